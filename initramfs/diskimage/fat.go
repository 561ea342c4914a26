package diskimage

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem"
)

// entry is one file to write into an image's file system.
type entry struct {
	path   string // absolute, slash-separated
	source string // host file, or
	data   []byte
}

func (e entry) size() (int64, error) {
	if e.source == "" {
		return int64(len(e.data)), nil
	}
	fi, err := os.Stat(e.source)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (e entry) open() (io.ReadCloser, error) {
	if e.source == "" {
		return io.NopCloser(strings.NewReader(string(e.data))), nil
	}
	return os.Open(e.source)
}

func extraEntries(files []File) []entry {
	out := make([]entry, 0, len(files))
	for _, f := range files {
		out = append(out, entry{path: f.Path, source: f.Source, data: f.Data})
	}
	return out
}

// totalSize sums the entries' sizes rounded up to whole clusters of clusterSize.
func totalSize(es []entry, clusterSize int64) (int64, error) {
	var n int64
	for _, e := range es {
		s, err := e.size()
		if err != nil {
			return 0, fmt.Errorf("size of %s: %w", e.path, err)
		}
		n += (s + clusterSize - 1) / clusterSize * clusterSize
	}
	return n, nil
}

// writeFiles copies the entries into fs, creating parent directories first.
func writeFiles(fs filesystem.FileSystem, es []entry) error {
	dirs := map[string]bool{}
	for _, e := range es {
		for d := path.Dir(e.path); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted) // parents sort before their children
	for _, d := range sorted {
		if err := fs.Mkdir(d); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	for _, e := range es {
		if err := writeFile(fs, e); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(fs filesystem.FileSystem, e entry) error {
	src, err := e.open()
	if err != nil {
		return fmt.Errorf("open %s: %w", e.path, err)
	}
	defer src.Close()
	dst, err := fs.OpenFile(e.path, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s in image: %w", e.path, err)
	}
	// go-diskfs grows a FAT file cluster chain on every Write; big writes keep that cheap.
	buf := make([]byte, 4<<20)
	if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, src, buf); err != nil {
		dst.Close()
		return fmt.Errorf("write %s in image: %w", e.path, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("close %s in image: %w", e.path, err)
	}
	return nil
}

// fatType picks FAT16 for file systems go-diskfs can lay out with a valid FAT16 cluster count
// and FAT32 above, because go-diskfs' FAT32 below about 33 MiB has too few clusters to be
// recognised as FAT32 by firmware that follows the specification.
func fatType(size int64) filesystem.Type {
	if size <= 512<<20 {
		return filesystem.TypeFat16
	}
	return filesystem.TypeFat32
}

// Offsets in a FAT boot sector (the BIOS parameter block).
const (
	bpbHiddenSectors = 0x1c
	fat32BackupBoot  = 0x32 // FAT32 only: sector of the backup boot sector
)

// setHiddenSectors records the partition's start sector in the FAT boot sector (and in the
// FAT32 backup boot sector), as mkfs.fat does: syslinux's boot sector uses it to find its own
// partition when the MBR code does not pass one. go-diskfs leaves it 0.
func setHiddenSectors(f *os.File, partStart int64, typ filesystem.Type) error {
	var v [4]byte
	binary.LittleEndian.PutUint32(v[:], uint32(partStart/512))
	sectors := []int64{0}
	if typ == filesystem.TypeFat32 {
		var b [2]byte
		if _, err := f.ReadAt(b[:], partStart+fat32BackupBoot); err != nil {
			return fmt.Errorf("read backup boot sector location: %w", err)
		}
		if s := int64(binary.LittleEndian.Uint16(b[:])); s != 0 && s != 0xffff {
			sectors = append(sectors, s)
		}
	}
	for _, s := range sectors {
		if _, err := f.WriteAt(v[:], partStart+s*512+bpbHiddenSectors); err != nil {
			return fmt.Errorf("set hidden sectors: %w", err)
		}
	}
	return nil
}
