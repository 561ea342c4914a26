// Package decompress turns an image stream into the raw disk image it holds. The format is
// chosen from the stream's first bytes (never from a file name): raw, gzip, zstd or xz, each
// with concatenated members/frames/streams. Decoders use the cores available: zstd through
// klauspost's concurrent decoder, gzip through pgzip's read-ahead, and xz through this
// package's own block-parallel decoder (ulikunitz/xz's LZMA2 engine under it) so that
// multi-block files made by `xz -T` decode on every core with bounded memory.
package decompress

import (
	"bytes"

	"github.com/flashline/flashline/internal/xzformat"
)

// Format is the container format of an image stream.
type Format string

// The formats Sniff recognises. Anything else is Raw: a disk image has no magic of its own.
const (
	Raw  Format = "raw"
	Gzip Format = "gzip"
	Zstd Format = "zstd"
	Xz   Format = "xz"
)

var (
	gzipMagic = []byte{0x1f, 0x8b, 0x08} // ID1, ID2 and CM=deflate, the only method in use
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	xzMagic   = []byte(xzformat.HeaderMagic)
)

// SniffLen is how many leading bytes Sniff needs to tell every format apart.
const SniffLen = 6

// Sniff names the format whose magic number starts head. A head shorter than SniffLen only
// matches formats whose magic fits in it, so a tiny raw image is still Raw.
func Sniff(head []byte) Format {
	switch {
	case bytes.HasPrefix(head, xzMagic):
		return Xz
	case bytes.HasPrefix(head, zstdMagic), isZstdSkippable(head):
		return Zstd
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip
	}
	return Raw
}

// isZstdSkippable reports a zstd skippable frame (magic 0x184D2A50-0x184D2A5F), which some
// tools (pzstd) put first; the decoder steps over it.
func isZstdSkippable(head []byte) bool {
	return len(head) >= 4 && head[0]&0xf0 == 0x50 && head[1] == 0x2a && head[2] == 0x4d && head[3] == 0x18
}
