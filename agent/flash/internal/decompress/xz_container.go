package decompress

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"

	"github.com/flashline/flashline/internal/xzformat"
)

// The xz container (tukaani.org xz-file-format 1.2.0): block headers, checks, the index and
// the stream footer, and the errors for a stream that breaks them.

var crc64Table = crc64.MakeTable(crc64.ECMA)

// FormatError is an xz stream that is damaged, truncated or beyond what the decoder accepts.
// Every error of the xz decoder about its input is one (errors.As), with its cause, if any,
// in the chain; its message starts with "xz: ".
type FormatError struct{ err error }

func (e *FormatError) Error() string { return e.err.Error() }

func (e *FormatError) Unwrap() error { return e.err }

func xzErrorf(format string, args ...any) error {
	return &FormatError{fmt.Errorf("xz: "+format, args...)}
}

type xzRecord struct{ unpadded, size int64 }

func verifyPadCheck(tail []byte, pad int, sum []byte) error {
	if len(tail) != pad+len(sum) {
		return xzErrorf("block padding or check truncated")
	}
	if !isZero(tail[:pad]) {
		return xzErrorf("non-zero block padding")
	}
	if !bytes.Equal(tail[pad:], sum) {
		return xzErrorf("block check mismatch (corrupt data)")
	}
	return nil
}

// xzSum returns the check as stored in the file: CRCs little-endian, SHA-256 as is (Go's hash
// package gives CRCs big-endian).
func xzSum(h hash.Hash) []byte {
	switch h := h.(type) {
	case nil:
		return nil
	case hash.Hash32:
		return binary.LittleEndian.AppendUint32(nil, h.Sum32())
	case hash.Hash64:
		return binary.LittleEndian.AppendUint64(nil, h.Sum64())
	}
	return h.Sum(nil)
}

// newXZHash returns the hash for an xz check type, nil for "none".
func newXZHash(check byte) hash.Hash {
	switch check {
	case xzformat.CheckCRC32:
		return crc32.NewIEEE()
	case xzformat.CheckCRC64:
		return crc64.New(crc64Table)
	case xzformat.CheckSHA256:
		return sha256.New()
	}
	return nil
}

func checkSize(check byte) (int, error) {
	switch check {
	case xzformat.CheckNone:
		return 0, nil
	case xzformat.CheckCRC32:
		return 4, nil
	case xzformat.CheckCRC64:
		return 8, nil
	case xzformat.CheckSHA256:
		return 32, nil
	}
	return 0, xzErrorf("unsupported check type %#x", check)
}

func checkIndex(index, got []xzRecord) error {
	if len(index) != len(got) {
		return xzErrorf("index lists %d blocks, stream has %d", len(index), len(got))
	}
	for i := range index {
		if index[i] != got[i] {
			return xzErrorf("index record %d does not match block", i)
		}
	}
	return nil
}

// xzBlockHeader is the part of a block header the decoder needs. Sizes are -1 when absent.
type xzBlockHeader struct {
	size         int // header length in bytes
	compressed   int64
	uncompressed int64
	dictCap      int64
}

func readFullXZ(r io.Reader, p []byte) error {
	if _, err := io.ReadFull(r, p); err != nil {
		return xzErrorf("%w", eofIsUnexpected(err))
	}
	return nil
}

// readXZBlockHeader parses a block header whose first (size) byte is b.
func readXZBlockHeader(r io.Reader, b byte) (xzBlockHeader, error) {
	h := xzBlockHeader{size: (int(b) + 1) * 4, compressed: -1, uncompressed: -1}
	buf := make([]byte, h.size)
	buf[0] = b
	if err := readFullXZ(r, buf[1:]); err != nil {
		return h, err
	}
	if crc32.ChecksumIEEE(buf[:h.size-4]) != binary.LittleEndian.Uint32(buf[h.size-4:]) {
		return h, xzErrorf("block header CRC mismatch")
	}
	return parseXZBlockHeader(buf)
}

// parseXZBlockHeader decodes a CRC-checked block header (size byte included, CRC excluded
// from parsing).
func parseXZBlockHeader(buf []byte) (xzBlockHeader, error) {
	h := xzBlockHeader{size: len(buf), compressed: -1, uncompressed: -1}
	body := buf[:len(buf)-4]
	flags := body[1]
	if flags&0x3c != 0 {
		return h, xzErrorf("reserved block flags set")
	}
	p := body[2:]
	var err error
	if flags&0x40 != 0 {
		if h.compressed, p, err = xzVarint(p); err != nil {
			return h, err
		}
		if h.compressed == 0 {
			return h, xzErrorf("zero compressed size")
		}
	}
	if flags&0x80 != 0 {
		if h.uncompressed, p, err = xzVarint(p); err != nil {
			return h, err
		}
	}
	nf := int(flags&3) + 1
	for i := range nf {
		var id, psz int64
		if id, p, err = xzVarint(p); err != nil {
			return h, err
		}
		if psz, p, err = xzVarint(p); err != nil {
			return h, err
		}
		if psz > int64(len(p)) {
			return h, xzErrorf("filter properties overrun the block header")
		}
		props := p[:psz]
		p = p[psz:]
		if id != 0x21 || i != nf-1 {
			return h, xzErrorf("filter %#x not supported (only LZMA2)", id)
		}
		if len(props) != 1 {
			return h, xzErrorf("bad LZMA2 filter properties")
		}
		if h.dictCap, err = lzma.DecodeDictCap(props[0]); err != nil {
			return h, xzErrorf("%w", err)
		}
	}
	if !isZero(p) {
		return h, xzErrorf("non-zero block header padding")
	}
	return h, nil
}

// xzVarint decodes the xz multibyte integer at the start of p.
func xzVarint(p []byte) (int64, []byte, error) {
	v, n, err := xzformat.Uvarint(p)
	if err != nil {
		return 0, nil, xzErrorf("%w", err)
	}
	return int64(v), p[n:], nil
}

// readIndexAndFooter reads an index (its indicator byte already consumed) and the stream
// footer, then queues the index for the consumer to match against the blocks it decoded.
func (x *xzReader) readIndexAndFooter(r *bufio.Reader, flags []byte) error {
	crc := crc32.NewIEEE()
	crc.Write([]byte{0})
	tr := io.TeeReader(r, crc)
	var br bufByteReader
	br.r = tr
	count, err := readUvarint(&br)
	if err != nil {
		return err
	}
	if count > 1<<24 {
		return xzErrorf("implausible index record count")
	}
	index := make([]xzRecord, 0, count)
	for range count {
		u, err := readUvarint(&br)
		if err != nil {
			return err
		}
		s, err := readUvarint(&br)
		if err != nil {
			return err
		}
		index = append(index, xzRecord{int64(u), int64(s)})
	}
	size := 1 + br.n
	pad := make([]byte, (4-size%4)%4)
	if err := readFullXZ(tr, pad); err != nil {
		return err
	}
	if !isZero(pad) {
		return xzErrorf("non-zero index padding")
	}
	size += int64(len(pad))
	var sum [4]byte
	if err := readFullXZ(r, sum[:]); err != nil {
		return err
	}
	if crc.Sum32() != binary.LittleEndian.Uint32(sum[:]) {
		return xzErrorf("index CRC mismatch")
	}
	size += 4
	var ft [12]byte
	if err := readFullXZ(r, ft[:]); err != nil {
		return err
	}
	if crc32.ChecksumIEEE(ft[4:10]) != binary.LittleEndian.Uint32(ft[0:4]) {
		return xzErrorf("stream footer CRC mismatch")
	}
	if string(ft[10:12]) != xzformat.FooterMagic || !bytes.Equal(ft[8:10], flags) {
		return xzErrorf("bad stream footer")
	}
	if (int64(binary.LittleEndian.Uint32(ft[4:8]))+1)*4 != size {
		return xzErrorf("footer backward size does not match the index")
	}
	return x.sendJob(&xzJob{index: index})
}

type bufByteReader struct {
	r io.Reader
	b [1]byte
	n int64
}

func (b *bufByteReader) ReadByte() (byte, error) {
	if _, err := io.ReadFull(b.r, b.b[:]); err != nil {
		return 0, xzErrorf("index: %w", eofIsUnexpected(err))
	}
	b.n++
	return b.b[0], nil
}

func readUvarint(br *bufByteReader) (uint64, error) {
	v, err := xzformat.ReadUvarint(br)
	if err != nil {
		if _, ok := errors.AsType[*FormatError](err); ok {
			return 0, err // the reader's: already says what broke
		}
		return 0, xzErrorf("index: %w", err)
	}
	return v, nil
}
