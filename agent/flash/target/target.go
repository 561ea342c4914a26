// Package target opens what an image is flashed onto, a block device or a regular file, and
// does the device work around the write: the safety checks made before the first byte
// (mounted, in use, removable, too small), O_DIRECT writes with a clean fallback to the page
// cache, zeroing so that zero blocks may be skipped, sync, partition table re-read and the
// GPT fix-up for disks larger than the image.
package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Align is the alignment of O_DIRECT buffers, offsets and lengths. 4096 suits 512-byte and
// 4K-sector devices and every common filesystem.
const Align = 4096

// AlignedBuffer returns a zeroed buffer of size bytes whose start is Align-aligned.
func AlignedBuffer(size int) []byte {
	b := make([]byte, size+Align)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (Align - 1))
	if off != 0 {
		off = Align - off
	}
	return b[off : off+size : off+size]
}

// Options say how to open a target.
type Options struct {
	// Force allows removable media.
	Force bool
	// NoDirect disables O_DIRECT.
	NoDirect bool
	// ImageSize, when >= 0, is checked against the device size before anything is written.
	ImageSize int64
	// Checker overrides where the safety checks look (tests); nil means the live system.
	Checker *Checker
}

// Kind is what a target is.
type Kind int

// The kinds of target.
const (
	File Kind = iota
	BlockDevice
)

// Target is an open flash target. WriteAt may be called from several goroutines at once.
type Target struct {
	Path string
	Kind Kind

	buffered *os.File // always open; unaligned writes, sync, ioctls
	direct   *os.File // O_DIRECT twin, nil when unavailable
	noDirect atomic.Bool

	size       int64 // device size; for files the size before flashing
	sectorSize int
	zeros      bool // every byte reads back as zero until written
	rdev       uint64
	checker    *Checker
}

// ErrNoDevice is returned for a target under the device directory (/dev) that does not exist
// or is not a block device.
var ErrNoDevice = errors.New("no such block device")

// CheckDevPath refuses a target under c.Dev (/dev) that is not an existing block device. In
// devtmpfs a missing disk would otherwise become a regular file in RAM, and a flash "to
// /dev/mmcblk0" on a board whose eMMC did not appear would succeed without writing any disk.
// Paths outside c.Dev are left to Open (regular files are allowed there). An empty c.Dev
// checks nothing.
func (c *Checker) CheckDevPath(path string) error {
	if c == nil || c.Dev == "" || !underDir(path, c.Dev) {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("target %s: %w (the disk did not appear)", path, ErrNoDevice)
	case err != nil:
		return fmt.Errorf("target %s: %w", path, err)
	case fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0:
		return fmt.Errorf("target %s: %w (it is a %s)", path, ErrNoDevice, describeMode(fi.Mode()))
	}
	return nil
}

func underDir(path, dir string) bool {
	p, d := filepath.Clean(path), filepath.Clean(dir)
	return p == d || strings.HasPrefix(p, d+string(filepath.Separator))
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// Open checks and opens path. A target under /dev must be an existing block device
// (CheckDevPath). Elsewhere a missing path becomes a new regular file, and an existing
// regular file is truncated and restored to its former length, so it reads back zeros
// (its size, like a disk's, is kept for the GPT fix-up). Nothing is modified until every
// safety check passed.
func Open(path string, opts Options) (*Target, error) {
	c := opts.Checker
	if c == nil {
		c = LiveChecker()
	}
	if err := c.CheckDevPath(path); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return openFile(path, opts, c, true)
	case err != nil:
		return nil, fmt.Errorf("target %s: %w", path, err)
	case fi.Mode().IsRegular():
		return openFile(path, opts, c, false)
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		return openDevice(path, opts, c, fi)
	}
	return nil, fmt.Errorf("target %s: not a block device or regular file", path)
}

func openFile(path string, opts Options, c *Checker, create bool) (*Target, error) {
	if !create {
		if dev, err := c.loopBacking(path); err != nil {
			return nil, fmt.Errorf("target %s: %w", path, err)
		} else if dev != "" {
			return nil, fmt.Errorf("target %s is in use as the backing file of %s", path, dev)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	t := &Target{Path: path, Kind: File, buffered: f, sectorSize: 512, checker: c, zeros: true}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("target: %w", err)
	}
	t.size = fi.Size()
	if t.size > 0 {
		// Drop the old blocks: the file then reads back zeros, so zero blocks need no write.
		if err := f.Truncate(0); err == nil {
			err = f.Truncate(t.size)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("target %s: truncate: %w", path, err)
		}
	}
	if !opts.NoDirect {
		t.direct = openDirect(path)
	}
	return t, nil
}

func openDirect(path string) *os.File {
	// O_DIRECT is refused at open (EINVAL) by filesystems without it, such as tmpfs.
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

func openDevice(path string, opts Options, c *Checker, fi os.FileInfo) (*Target, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("target %s: no device number", path)
	}
	rdev := uint64(st.Rdev)
	if err := c.CheckDevice(rdev, opts.Force); err != nil {
		return nil, fmt.Errorf("target %s: %w", path, err)
	}
	// O_EXCL on a block device fails with EBUSY while the kernel or anyone else holds it
	// (a mounted filesystem, md, dm, swap): the kernel's own answer to "is it in use".
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("target %s is in use (mounted or held by another device)", path)
		}
		return nil, fmt.Errorf("target: %w", err)
	}
	t := &Target{Path: path, Kind: BlockDevice, buffered: f, rdev: rdev, checker: c}
	size, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("target %s: size: %w", path, err)
	}
	t.size = int64(size)
	t.sectorSize = 512
	if ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && ss > 0 {
		t.sectorSize = ss
	}
	if opts.ImageSize >= 0 && opts.ImageSize > t.size {
		f.Close()
		return nil, fmt.Errorf("target %s is smaller than the image: %d < %d bytes", path, t.size, opts.ImageSize)
	}
	if !opts.NoDirect {
		t.direct = openDirect(path)
	}
	return t, nil
}

// Size is the device's size, or for a file its length before flashing.
func (t *Target) Size() int64 { return t.size }

// Bounded reports whether writes must stay within Size (devices; files grow).
func (t *Target) Bounded() bool { return t.Kind == BlockDevice }

// ReadsZeros reports whether unwritten bytes are known to read back as zeros, so that zero
// blocks of the image may be skipped.
func (t *Target) ReadsZeros() bool { return t.zeros }

// Direct reports whether O_DIRECT writes are in use.
func (t *Target) Direct() bool { return t.direct != nil && !t.noDirect.Load() }

// SectorSize is the logical sector size.
func (t *Target) SectorSize() int { return t.sectorSize }

func aligned(p []byte, off int64) bool {
	return len(p) > 0 && off%Align == 0 && len(p)%Align == 0 &&
		uintptr(unsafe.Pointer(&p[0]))%Align == 0
}

// WriteAt writes p at off, through O_DIRECT when p and off are aligned.
func (t *Target) WriteAt(p []byte, off int64) (int, error) {
	if t.Bounded() && off+int64(len(p)) > t.size {
		return 0, fmt.Errorf("image is larger than target %s (%d bytes)", t.Path, t.size)
	}
	if t.direct != nil && !t.noDirect.Load() && aligned(p, off) {
		n, err := t.direct.WriteAt(p, off)
		if err == nil || n > 0 || !errors.Is(err, syscall.EINVAL) {
			return n, err
		}
		// Some filesystems accept the O_DIRECT open but refuse the write; fall back.
		t.noDirect.Store(true)
	}
	return t.buffered.WriteAt(p, off)
}

// ReadAt reads back from the medium, bypassing the page cache when O_DIRECT works.
func (t *Target) ReadAt(p []byte, off int64) (int, error) {
	if t.direct != nil && !t.noDirect.Load() && aligned(p, off) {
		n, err := t.direct.ReadAt(p, off)
		if err == nil || err == io.EOF || !errors.Is(err, syscall.EINVAL) {
			return n, err
		}
	}
	return t.buffered.ReadAt(p, off)
}

// Sync makes everything written durable. For a file it first extends the file to at least
// length bytes, since skipped zero blocks at the end were never written.
func (t *Target) Sync(length int64) error {
	if t.Kind == File {
		fi, err := t.buffered.Stat()
		if err != nil {
			return fmt.Errorf("sync %s: %w", t.Path, err)
		}
		if fi.Size() < length {
			if err := t.buffered.Truncate(length); err != nil {
				return fmt.Errorf("sync %s: %w", t.Path, err)
			}
		}
	}
	if err := t.buffered.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", t.Path, err)
	}
	return nil
}

// ZeroRange makes [off, off+n) read back as zeros cheaply when the device guarantees it
// (write-zeroes offload); it reports whether it did. Only then may zero blocks be skipped.
func (t *Target) ZeroRange(off, n int64) bool {
	if t.Kind != BlockDevice || !t.checker.writeZeroesOffload(t.rdev) {
		return false
	}
	ss := int64(t.sectorSize)
	n = (n + ss - 1) / ss * ss
	if off%ss != 0 || off+n > t.size {
		return false
	}
	rng := [2]uint64{uint64(off), uint64(n)}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, t.buffered.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&rng[0])))
	if e != 0 {
		return false
	}
	t.zeros = true
	return true
}

// Wipe overwrites [off, off+n) with zeros and syncs; it is how a half-flashed target is made
// unbootable, so it writes rather than trusting discard.
func (t *Target) Wipe(off, n int64) error {
	if t.Bounded() {
		n = min(n, t.size-off)
	}
	if n <= 0 {
		return nil
	}
	buf := AlignedBuffer(int(min(n, 1<<20)))
	for done := int64(0); done < n; {
		k := min(int64(len(buf)), n-done)
		if _, err := t.buffered.WriteAt(buf[:k], off+done); err != nil {
			return fmt.Errorf("wipe %s: %w", t.Path, err)
		}
		done += k
	}
	if err := t.buffered.Sync(); err != nil {
		return fmt.Errorf("wipe %s: %w", t.Path, err)
	}
	return nil
}

// RereadPartitions asks the kernel to re-read the partition table of the device at path,
// retrying while udev or a prober still holds a partition open (EBUSY). Call it after Close:
// the target's exclusive open would make the kernel refuse. A path without partitions to
// re-read (a file, a partition, a loop device without partscan) is not an error.
func RereadPartitions(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("re-read partitions of %s: %w", path, err)
	}
	defer f.Close()
	var last error
	for range 20 {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKRRPART, 0)
		switch e {
		case 0:
			return nil
		case unix.EINVAL, unix.ENOTTY:
			return nil
		}
		last = e
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("re-read partitions of %s: %w", path, last)
}

// Close closes the target.
func (t *Target) Close() error {
	if t.direct != nil {
		t.direct.Close()
	}
	return t.buffered.Close()
}
