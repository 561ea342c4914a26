package bmap

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// DefaultBlockSize is bmaptool's block size.
const DefaultBlockSize = 4096

// Create maps the raw image f: the data extents SEEK_DATA/SEEK_HOLE report (all of the file
// where the file system cannot tell), less the blocks in them that are all zeros, so that an
// image copied without holes maps as small as a sparse one. Zero blocks are free space to
// the flash as holes are: it discards the target's range first where it can.
func Create(f *os.File, blockSize int64) (*Map, error) {
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat image: %w", err)
	}
	size := fi.Size()
	if size <= 0 {
		return nil, errors.New("the image is empty")
	}
	m := &Map{Version: "2.0", ImageSize: size, BlockSize: blockSize, BlocksCount: (size + blockSize - 1) / blockSize}
	extents, err := dataExtents(f, size)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, blockSize)
	zero := make([]byte, blockSize)
	var cur *Range
	h := sha256.New()
	flush := func() {
		if cur != nil {
			copy(cur.SHA256[:], h.Sum(nil))
			m.Ranges = append(m.Ranges, *cur)
			m.MappedBlocks += cur.Last - cur.First + 1
			cur = nil
			h.Reset()
		}
	}
	next := int64(0) // first block not looked at yet: extents may share a block
	for _, e := range extents {
		for blk := max(e[0]/blockSize, next); blk*blockSize < e[1]; blk++ {
			next = blk + 1
			n, err := f.ReadAt(buf, blk*blockSize)
			if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				return nil, fmt.Errorf("read block %d: %w", blk, err)
			}
			if bytes.Equal(buf[:n], zero[:n]) {
				flush()
				continue
			}
			if cur != nil && cur.Last != blk-1 {
				flush()
			}
			if cur == nil {
				cur = &Range{First: blk}
			}
			cur.Last = blk
			h.Write(buf[:n])
		}
	}
	flush()
	return m, nil
}

// dataExtents lists the [start, end) byte spans of f that hold data, block-rounded by the
// caller; the whole file when the file system does not support SEEK_DATA.
func dataExtents(f *os.File, size int64) ([][2]int64, error) {
	fd := int(f.Fd())
	var out [][2]int64
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data past off
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return [][2]int64{{0, size}}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("seek data: %w", err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole: %w", err)
		}
		out = append(out, [2]int64{start, min(end, size)})
		off = end
	}
	return out, nil
}
