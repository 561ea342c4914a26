// Package sysinit prepares the file systems the agent needs on a netbooted device: what u-root's
// init does not do, or what is missing when the agent itself is PID 1 (a bare initramfs
// without u-root's init) or runs in a minimal container. Every step is idempotent: what is
// mounted already is left alone, so running it after u-root's init costs nothing.
package sysinit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one file system to mount.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	// Optional mounts may fail (the file system is not in this kernel, or the directory it
	// lives under does not exist, as /sys/firmware/efi on a BIOS machine).
	Optional bool
	// OnlyIfParent skips the mount when Target's parent directory does not exist, instead of
	// creating it (efivarfs under /sys/firmware/efi only exists on UEFI boots).
	OnlyIfParent bool
}

// Mounts lists what the agent relies on, in order. Debian's kernel has DEVTMPFS_MOUNT off, so
// without /dev mounted here PID 1 has no console and no block devices.
func Mounts() []Mount {
	const nosuid, nodev, noexec = unix.MS_NOSUID, unix.MS_NODEV, unix.MS_NOEXEC
	return []Mount{
		{Source: "proc", Target: "/proc", FSType: "proc", Flags: nosuid | nodev | noexec},
		{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: nosuid | nodev | noexec},
		{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: nosuid, Data: "mode=0755"},
		{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: nosuid | noexec, Data: "gid=5,mode=620,ptmxmode=666", Optional: true},
		{Source: "tmpfs", Target: "/dev/shm", FSType: "tmpfs", Flags: nosuid | nodev, Optional: true},
		{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: nosuid | nodev, Data: "mode=0755", Optional: true},
		{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: nosuid | nodev, Optional: true},
		{Source: "efivarfs", Target: "/sys/firmware/efi/efivars", FSType: "efivarfs", Flags: nosuid | nodev | noexec, Optional: true, OnlyIfParent: true},
		{Source: "debugfs", Target: "/sys/kernel/debug", FSType: "debugfs", Optional: true, OnlyIfParent: true},
		{Source: "configfs", Target: "/sys/kernel/config", FSType: "configfs", Optional: true, OnlyIfParent: true},
	}
}

// Mounter mounts a file system; unix.Mount in production, a recorder in tests.
type Mounter func(source, target, fstype string, flags uintptr, data string) error

// System is the root the mounts are made under and how they are made.
type System struct {
	// Root is prefixed to every path: "/" on the device, a temporary directory in tests.
	Root string
	// Mount mounts; nil means unix.Mount.
	Mount Mounter
	// MountInfo opens the list of current mounts; nil means Root/proc/self/mountinfo.
	MountInfo func() (io.ReadCloser, error)
}

// Setup mounts every file system of Mounts that is not mounted yet and creates the
// directories and files later steps expect (/etc for resolv.conf, /var/run). It returns the
// targets it mounted and an error joining every failed non-optional step.
func Setup() ([]string, error) { return System{Root: "/"}.Setup(Mounts()) }

// Setup mounts ms under s.Root, skipping those already mounted.
func (s System) Setup(ms []Mount) ([]string, error) {
	mount := s.Mount
	if mount == nil {
		mount = unix.Mount
	}
	var done []string
	var errs []error
	for _, m := range ms {
		// Re-read the table each time: /proc itself is one of the mounts.
		mounted, _ := s.mounted()
		if mounted[m.Target] {
			continue
		}
		dir := s.path(m.Target)
		if m.OnlyIfParent {
			if _, err := os.Stat(filepath.Dir(dir)); err != nil {
				continue
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			if !m.Optional {
				errs = append(errs, fmt.Errorf("create mount point %s: %w", m.Target, err))
			}
			continue
		}
		if err := mount(m.Source, dir, m.FSType, m.Flags, m.Data); err != nil {
			if errors.Is(err, unix.EBUSY) {
				continue // mounted by someone else meanwhile
			}
			if !m.Optional {
				errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.FSType, m.Target, err))
			}
			continue
		}
		done = append(done, m.Target)
	}
	for _, d := range []string{"/etc", "/var/run", "/var/log", "/tmp"} {
		if err := os.MkdirAll(s.path(d), 0o755); err != nil {
			errs = append(errs, fmt.Errorf("create %s: %w", d, err))
		}
	}
	// /dev/fd and friends are symlinks udev would make; tools (and Go's os/exec with
	// ExtraFiles) expect them.
	for name, target := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"} {
		p := s.path(name)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if _, err := os.Stat(filepath.Dir(p)); err != nil {
			continue
		}
		_ = os.Symlink(target, p) // cosmetic: nothing in the journey fails without them
	}
	return done, errors.Join(errs...)
}

func (s System) path(p string) string { return filepath.Join(s.Root, p) }

// mounted returns the set of mount points (relative to Root, as "/proc") currently mounted.
func (s System) mounted() (map[string]bool, error) {
	open := s.MountInfo
	if open == nil {
		open = func() (io.ReadCloser, error) { return os.Open(s.path("/proc/self/mountinfo")) }
	}
	r, err := open()
	if err != nil {
		return map[string]bool{}, err
	}
	defer r.Close()
	points, err := ParseMountInfo(r)
	if err != nil {
		return map[string]bool{}, err
	}
	root := filepath.Clean(s.Root)
	out := map[string]bool{}
	for _, p := range points {
		if root == "/" {
			out[p] = true
			continue
		}
		if rel, ok := strings.CutPrefix(p, root); ok && (rel == "" || rel[0] == '/') {
			if rel == "" {
				rel = "/"
			}
			out[rel] = true
		}
	}
	return out, nil
}

// ParseMountInfo returns the mount points listed in a /proc/self/mountinfo stream (the
// fifth field, with the kernel's octal escapes for space, tab, newline and backslash undone).
func ParseMountInfo(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		out = append(out, unescapeOctal(f[4]))
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// InInitramfs reports whether / is an initramfs (ramfs or tmpfs), i.e. the agent runs on a
// netbooted device and owns the machine, rather than on a developer's host where it must not
// mount, load modules or reconfigure NICs.
func InInitramfs() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false
	}
	return st.Type == unix.RAMFS_MAGIC || st.Type == unix.TMPFS_MAGIC
}
