package sysinit

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const sampleMountInfo = `22 1 0:21 / / rw,relatime - rootfs rootfs rw
23 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
24 22 0:5 / /dev rw,nosuid,relatime - devtmpfs devtmpfs rw,size=494216k
25 22 0:23 / /mnt/with\040space rw - tmpfs tmpfs rw
short line
`

func TestParseMountInfo(t *testing.T) {
	got, err := ParseMountInfo(strings.NewReader(sampleMountInfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/", "/proc", "/dev", "/mnt/with space"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

type call struct{ source, target, fstype string }

func TestSetupSkipsMountedAndHandlesOptional(t *testing.T) {
	root := t.TempDir()
	// /proc and /dev are mounted already (as seen through the root prefix).
	info := strings.NewReplacer("/proc", root+"/proc", "/dev", root+"/dev").Replace(sampleMountInfo)
	var calls []call
	s := System{
		Root: root,
		Mount: func(source, target, fstype string, flags uintptr, data string) error {
			calls = append(calls, call{source, strings.TrimPrefix(target, root), fstype})
			if fstype == "devpts" {
				return unix.ENODEV // optional: ignored
			}
			if fstype == "sysfs" {
				return unix.EPERM // required: reported
			}
			return nil
		},
		MountInfo: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(info)), nil },
	}
	done, err := s.Setup(Mounts())
	if err == nil || !strings.Contains(err.Error(), "mount sysfs on /sys") {
		t.Errorf("error %v does not report the failed sysfs mount", err)
	}
	want := []call{
		{"sysfs", "/sys", "sysfs"},
		{"devpts", "/dev/pts", "devpts"},
		{"tmpfs", "/dev/shm", "tmpfs"},
		{"tmpfs", "/run", "tmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
	}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("mount calls\n got %v\nwant %v", calls, want)
	}
	if wantDone := []string{"/dev/shm", "/run", "/tmp"}; !reflect.DeepEqual(done, wantDone) {
		t.Errorf("done = %v, want %v", done, wantDone)
	}
	for _, d := range []string{"etc", "var/run", "sys"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s not created: %v", d, err)
		}
	}
	// efivarfs needs /sys/firmware/efi: absent, so it was never tried.
	if _, err := os.Stat(filepath.Join(root, "sys/firmware/efi/efivars")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("efivars mount point created on a non-UEFI root: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(root, "dev/fd")); err != nil || target != "/proc/self/fd" {
		t.Errorf("/dev/fd -> %q, %v", target, err)
	}
}

func TestSetupIsIdempotent(t *testing.T) {
	root := t.TempDir()
	var lines []string
	for i, m := range Mounts() {
		lines = append(lines, strings.Join([]string{"1", "1", "0:1", "/", root + m.Target, "rw", "-", m.FSType, m.Source, "rw"}, " "))
		_ = i
	}
	s := System{
		Root: root,
		Mount: func(string, string, string, uintptr, string) error {
			t.Fatal("mount called although all is mounted")
			return nil
		},
		MountInfo: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(strings.Join(lines, "\n"))), nil },
	}
	done, err := s.Setup(Mounts())
	if err != nil || len(done) != 0 {
		t.Errorf("Setup = %v, %v; want nothing done", done, err)
	}
}
