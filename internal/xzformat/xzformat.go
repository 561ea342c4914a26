// Package xzformat holds the parts of the xz file format (tukaani.org xz-file-format 1.2.0)
// that the agent's decoder (agent/flash/decompress) and the image builder's encoder
// (initramfs/diskimage/xzblock) share: the magic bytes, the check IDs and the multibyte
// integers of block headers and the index.
package xzformat

import (
	"encoding/binary"
	"errors"
	"io"
)

// The stream header starts with HeaderMagic; the stream footer ends with FooterMagic.
const (
	HeaderMagic = "\xfd7zXZ\x00"
	FooterMagic = "YZ"
)

// Check IDs of the stream flags.
const (
	CheckNone   = 0x00
	CheckCRC32  = 0x01
	CheckCRC64  = 0x04
	CheckSHA256 = 0x0a
)

// maxLen is the longest multibyte integer: 9 bytes of 7 bits hold the format's largest
// value, 2^63-1, so a longer one is an overflow.
const maxLen = 9

// Errors of Uvarint and ReadUvarint.
var (
	ErrNonMinimal = errors.New("non-minimal integer encoding")
	ErrOverflow   = errors.New("integer overflow")
	ErrTruncated  = errors.New("truncated integer")
)

// AppendUvarint appends v as a multibyte integer: 7 bits a byte, low bits first (Go's own
// uvarint encoding, which is always minimal).
func AppendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// Uvarint decodes the multibyte integer at the start of p and returns it with its length.
// The format allows no padding bytes and no values above 2^63-1.
func Uvarint(p []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < maxLen && i < len(p); i++ {
		b := p[i]
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, 0, ErrNonMinimal
			}
			return v, i + 1, nil
		}
	}
	if len(p) >= maxLen {
		return 0, 0, ErrOverflow
	}
	return 0, 0, ErrTruncated
}

// ReadUvarint reads one multibyte integer from r; r's errors are returned as they are.
func ReadUvarint(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := range maxLen {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, ErrNonMinimal
			}
			return v, nil
		}
	}
	return 0, ErrOverflow
}
