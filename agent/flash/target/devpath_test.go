package target

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A temporary directory stands in for /dev: only an existing block device under it may be a
// target; regular files stay allowed outside it.
func TestCheckDevPath(t *testing.T) {
	dev := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(dev, "regular"), nil, 0o644)
	os.Mkdir(filepath.Join(dev, "dir"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(dev, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(dev, "gone"), filepath.Join(dev, "dangling"))
	c := &Checker{Dev: dev}
	for _, tt := range []struct {
		name, path string
		refused    bool
	}{
		{"missing node", filepath.Join(dev, "mmcblk0"), true},
		{"missing node, unclean path", dev + "//sub/../mmcblk0", true},
		{"regular file in devtmpfs", filepath.Join(dev, "regular"), true},
		{"directory", filepath.Join(dev, "dir"), true},
		{"fifo", filepath.Join(dev, "fifo"), true},
		{"dangling symlink (by-id of a gone disk)", filepath.Join(dev, "dangling"), true},
		{"missing file outside /dev", filepath.Join(outside, "new.img"), false},
		{"prefix that is not the directory", dev + "x/disk", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := c.CheckDevPath(tt.path)
			if got := errors.Is(err, ErrNoDevice); got != tt.refused {
				t.Fatalf("CheckDevPath(%s) = %v, refused %v want %v", tt.path, err, got, tt.refused)
			}
		})
	}
	// Open refuses too, and creates nothing.
	if _, err := Open(filepath.Join(dev, "vda"), Options{Checker: c, ImageSize: -1}); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("Open of a missing device: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dev, "vda")); err == nil {
		t.Fatal("Open created a file in the device directory")
	}
	tg, err := Open(filepath.Join(outside, "new.img"), Options{Checker: &Checker{Dev: dev, Sysfs: t.TempDir()}, ImageSize: -1, NoDirect: true})
	if err != nil {
		t.Fatalf("a regular-file target outside /dev: %v", err)
	}
	tg.Close()
	if err := (&Checker{Dev: "/dev"}).CheckDevPath("/dev/null"); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("/dev/null (a character device): %v", err)
	}
}
