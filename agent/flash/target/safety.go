package target

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/flashline/flashline/agent/bootmedia"
)

// Checker answers the safety questions about a device from sysfs and /proc. Its paths are
// fields so tests can point it at a fake tree.
type Checker struct {
	Sysfs     string // usually /sys
	Mountinfo string // usually /proc/self/mountinfo
	Swaps     string // usually /proc/swaps
	// Dev holds the disks' device nodes (usually /dev), read to recognise the boot medium.
	Dev string
	// BootMedia, when set, is the medium the agent booted from (flashline.bootmedia= on the
	// kernel command line): it is never a target, whatever --force says.
	BootMedia *bootmedia.ID
}

// LiveChecker looks at the running system.
func LiveChecker() *Checker {
	return &Checker{Sysfs: "/sys", Mountinfo: "/proc/self/mountinfo", Swaps: "/proc/swaps", Dev: "/dev",
		BootMedia: bootMediaFromCmdline("/proc/cmdline")}
}

// bootMediaFromCmdline reads flashline.bootmedia= from the kernel command line; a missing or
// unreadable parameter means no boot medium is known (a netbooted device has none).
func bootMediaFromCmdline(path string) *bootmedia.ID {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, bootmedia.Param+"="); ok {
			if id, err := bootmedia.Parse(v); err == nil {
				return &id
			}
		}
	}
	return nil
}

// checkBootMedia refuses the disk the agent booted from.
func (c *Checker) checkBootMedia(disk string) error {
	if c.BootMedia == nil {
		return nil
	}
	name := filepath.Base(disk)
	f, err := os.Open(filepath.Join(c.Dev, name))
	if err != nil {
		return fmt.Errorf("cannot tell whether %s is the boot medium: %w", name, err)
	}
	defer f.Close()
	is, err := c.BootMedia.Is(f)
	if err != nil {
		return fmt.Errorf("cannot tell whether %s is the boot medium: %w", name, err)
	}
	if is {
		return fmt.Errorf("%s is the medium this agent booted from (%s=ptuuid:%s): it is never flashed, even with --force", name, bootmedia.Param, c.BootMedia.PTUUID)
	}
	return nil
}

func devString(rdev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
}

// devDir is the sysfs directory of a block device, resolved to its real path so that a
// partition's parent is its parent directory.
func (c *Checker) devDir(dev string) (string, error) {
	p, err := filepath.EvalSymlinks(filepath.Join(c.Sysfs, "dev", "block", dev))
	if err != nil {
		return "", fmt.Errorf("device %s not in sysfs: %w", dev, err)
	}
	return p, nil
}

// wholeDisk returns the sysfs directory of the disk a device belongs to (itself if whole).
func (c *Checker) wholeDisk(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		return filepath.Dir(dir)
	}
	return dir
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// family lists the device numbers ("maj:min") of a disk and all of its partitions.
func (c *Checker) family(disk string) map[string]string {
	fam := map[string]string{}
	if d := readTrim(filepath.Join(disk, "dev")); d != "" {
		fam[d] = filepath.Base(disk)
	}
	entries, _ := os.ReadDir(disk)
	for _, e := range entries {
		sub := filepath.Join(disk, e.Name())
		if _, err := os.Stat(filepath.Join(sub, "partition")); err != nil {
			continue
		}
		if d := readTrim(filepath.Join(sub, "dev")); d != "" {
			fam[d] = e.Name()
		}
	}
	return fam
}

// CheckDevice refuses a device that is mounted, the medium the agent booted from, used as
// swap, held by another device (md, dm, LVM) or, unless force, removable. A partition is judged with its whole disk:
// writing the disk under a mounted sibling partition is as fatal as writing the mount.
func (c *Checker) CheckDevice(rdev uint64, force bool) error {
	dir, err := c.devDir(devString(rdev))
	if err != nil {
		return err
	}
	disk := c.wholeDisk(dir)
	fam := c.family(disk)
	if len(fam) == 0 {
		fam[devString(rdev)] = filepath.Base(dir)
	}
	if err := c.checkMounts(fam); err != nil {
		return err
	}
	if err := c.checkBootMedia(disk); err != nil {
		return err
	}
	if err := c.checkSwaps(fam); err != nil {
		return err
	}
	for d, name := range fam {
		ddir, err := c.devDir(d)
		if err != nil {
			continue
		}
		if holders, _ := os.ReadDir(filepath.Join(ddir, "holders")); len(holders) > 0 {
			return fmt.Errorf("%s is in use by %s", name, holders[0].Name())
		}
	}
	if !force && readTrim(filepath.Join(disk, "removable")) == "1" {
		return fmt.Errorf("%s is removable media (use --force to write it anyway)", filepath.Base(disk))
	}
	return nil
}

func (c *Checker) checkMounts(fam map[string]string) error {
	f, err := os.Open(c.Mountinfo)
	if err != nil {
		return fmt.Errorf("cannot check mounts: %w", err)
	}
	defer f.Close()
	mounts, err := ParseMountinfo(f)
	if err != nil {
		return fmt.Errorf("cannot check mounts: %w", err)
	}
	for _, m := range mounts {
		if name, ok := fam[m.Dev]; ok {
			return fmt.Errorf("%s is mounted on %s", name, m.Point)
		}
	}
	return nil
}

func (c *Checker) checkSwaps(fam map[string]string) error {
	b, err := os.ReadFile(c.Swaps)
	if err != nil {
		return nil // no swap support: nothing can be swapped on
	}
	for i, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if i == 0 || len(fields) == 0 {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fields[0], &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
			continue
		}
		if name, ok := fam[devString(st.Rdev)]; ok {
			return fmt.Errorf("%s is in use as swap", name)
		}
	}
	return nil
}

// Mount is one line of /proc/self/mountinfo, reduced to what the checks need.
type Mount struct {
	Dev   string // "major:minor"
	Point string
}

// ParseMountinfo reads the mountinfo format (proc(5)). Malformed lines are an error: a check
// that silently skips what it cannot read would let a mounted disk through.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("mountinfo line %d: too few fields", n)
		}
		maj, min, ok := strings.Cut(f[2], ":")
		if !ok {
			return nil, fmt.Errorf("mountinfo line %d: bad device %q", n, f[2])
		}
		if _, err := strconv.ParseUint(maj, 10, 32); err != nil {
			return nil, fmt.Errorf("mountinfo line %d: bad device %q", n, f[2])
		}
		if _, err := strconv.ParseUint(min, 10, 32); err != nil {
			return nil, fmt.Errorf("mountinfo line %d: bad device %q", n, f[2])
		}
		out = append(out, Mount{Dev: f[2], Point: unescapeMount(f[4])})
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for a space) the kernel uses in mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// loopBacking returns the loop device using path as its backing file, or "".
func (c *Checker) loopBacking(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	matches, _ := filepath.Glob(filepath.Join(c.Sysfs, "block", "loop*", "loop", "backing_file"))
	for _, m := range matches {
		if readTrim(m) == abs {
			return "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(m))), nil
		}
	}
	return "", nil
}

// writeZeroesOffload reports whether the device zeroes ranges without writing them
// (REQ_OP_WRITE_ZEROES), which makes BLKZEROOUT both fast and a guarantee.
func (c *Checker) writeZeroesOffload(rdev uint64) bool {
	dir, err := c.devDir(devString(rdev))
	if err != nil {
		return false
	}
	v, err := strconv.ParseInt(readTrim(filepath.Join(c.wholeDisk(dir), "queue", "write_zeroes_max_bytes")), 10, 64)
	return err == nil && v > 0
}
