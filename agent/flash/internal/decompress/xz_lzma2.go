package decompress

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// LZMA2 inside an xz block: the chunk framing that hands one block's chunks to a shared
// ulikunitz decoder (lzma.Reader2), and the decoders the workers and the splitter reuse.

// lzma2Decoder is an LZMA2 decoder kept from block to block (one per worker, one for the
// blocks decoded straight from the stream). ulikunitz's Reader2 allocates its dictionary
// (8 MiB for xz -6) when it is made and has no Reset, so one Reader2 per block made a
// dictionary's worth of garbage per block. Every xz block starts with a chunk that resets the
// dictionary and the state, so the blocks' chunk sequences, each without its end-of-stream
// marker, decode as one LZMA2 stream through one Reader2.
type lzma2Decoder struct {
	r       *lzma.Reader2
	dictCap int
}

// reader returns the Reader2 for a block with header h reading from src, which must be the
// same source every call. It is made anew when the block needs a larger dictionary.
func (lz *lzma2Decoder) reader(src io.Reader, h xzBlockHeader) (*lzma.Reader2, error) {
	// Matches cannot reach before the block's start, so a dictionary larger than the block
	// is never used; a corrupt header must not make us allocate gigabytes either.
	dict := h.dictCap
	if h.uncompressed >= 0 {
		dict = min(dict, h.uncompressed)
	}
	dict = max(lzma.MinDictCap, dict)
	if dict > xzMaxDict {
		return nil, xzErrorf("dictionary of %d MiB is more than the agent allows (%d MiB)", dict>>20, xzMaxDict>>20)
	}
	if lz.r == nil || int(dict) > lz.dictCap {
		lz.r = nil // let the old dictionary go before the new one is allocated
		cfg := lzma.Reader2Config{DictCap: int(dict)}
		r, err := cfg.NewReader2(src)
		if err != nil {
			return nil, xzErrorf("%w", err)
		}
		lz.r, lz.dictCap = r, int(dict)
	}
	return lz.r, nil
}

// decodeReusing decodes one buffered block whose header gives its uncompressed size.
func (x *xzReader) decodeReusing(lz *lzma2Decoder, src *bytes.Reader, job *xzJob, data []byte, h xzBlockHeader, check byte) ([]byte, error) {
	// The chunk sequence must open with a dictionary reset (control 0x01 or >= 0xe0), which
	// is what makes sharing the decoder sound, and its chunks must add up to the header's
	// size: the decoder is stopped at that size, so output beyond it would otherwise stay
	// in its dictionary and come out as the next block's first bytes.
	if len(data) < 2 || (data[0] != 0x01 && data[0] < 0xe0) {
		return nil, errNoReset
	}
	if size, err := lzma2Size(data); err != nil {
		return nil, err
	} else if size != h.uncompressed {
		return nil, xzErrorf("block holds %d bytes, its header says %d", size, h.uncompressed)
	}
	src.Reset(data[:len(data)-1]) // without the end marker, which would stop the Reader2
	lr, err := lz.reader(src, h)
	if err != nil {
		return nil, err
	}
	sum, err := x.emit(job, lr, h.uncompressed, newXZHash(check))
	if err != nil {
		lz.r = nil // a failed Reader2 stays failed
		return nil, err
	}
	if src.Len() != 0 {
		lz.r = nil
		return nil, xzErrorf("block longer than its header says")
	}
	job.size = h.uncompressed
	return sum, nil
}

var errNoReset = xzErrorf("block does not start with an LZMA2 dictionary reset")

// lzma2Framer hands one block's LZMA2 chunks from the stream to a shared Reader2, reading
// each chunk header on the way: it keeps the end marker from the Reader2 (which would stop
// it for good), checks that the block starts with a dictionary reset, and adds up the sizes
// the chunks announce, so a header that understates the block is caught.
type lzma2Framer struct {
	r    *bufio.Reader
	left int   // bytes of the current chunk (header included) still to pass on
	size int64 // uncompressed bytes the chunks so far announce
	n    int64 // compressed bytes consumed, end marker included
	end  bool
	cut  bool // the stream ended inside the block
}

func (f *lzma2Framer) reset(r *bufio.Reader) { *f = lzma2Framer{r: r} }

func (f *lzma2Framer) Read(p []byte) (int, error) {
	if f.left == 0 {
		if f.end {
			return 0, io.EOF
		}
		hdr, err := f.r.Peek(1)
		if err != nil {
			f.cut = f.cut || errors.Is(err, io.EOF)
			return 0, eofIsUnexpected(err)
		}
		c := hdr[0]
		if f.n == 0 && c != 0x01 && c < 0xe0 {
			return 0, errNoReset
		}
		hl := 0
		switch {
		case c == 0x00:
			f.r.Discard(1)
			f.n++
			f.end = true
			return 0, io.EOF
		case c == 0x01 || c == 0x02:
			hl = 3
		case c >= 0xc0:
			hl = 6
		case c >= 0x80:
			hl = 5
		default:
			return 0, xzErrorf("invalid LZMA2 chunk control byte %#x", c)
		}
		if hdr, err = f.r.Peek(hl); err != nil {
			f.cut = f.cut || errors.Is(err, io.EOF)
			return 0, eofIsUnexpected(err)
		}
		out := int(binary.BigEndian.Uint16(hdr[1:])) + 1
		body := out
		if c >= 0x80 {
			out += int(c&0x1f) << 16
			body = int(binary.BigEndian.Uint16(hdr[3:])) + 1
		}
		f.size += int64(out)
		f.left = hl + body
	}
	n, err := f.r.Read(p[:min(len(p), f.left)])
	f.left -= n
	f.n += int64(n)
	if err == io.EOF {
		f.cut = true
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// finish consumes the block's end marker once its announced bytes are decoded.
func (f *lzma2Framer) finish(want int64) error {
	if f.left != 0 {
		return xzErrorf("block longer than its header says")
	}
	if !f.end {
		c, err := f.r.ReadByte()
		if err != nil {
			f.cut = f.cut || errors.Is(err, io.EOF)
			return xzErrorf("%w", eofIsUnexpected(err))
		}
		f.n++
		if c != 0x00 {
			return xzErrorf("block longer than its header says")
		}
		f.end = true
	}
	if f.size != want {
		return xzErrorf("block holds %d bytes, its header says %d", f.size, want)
	}
	return nil
}

// lzma2Size walks an LZMA2 chunk sequence by its chunk headers alone and returns the
// uncompressed size they announce; the sequence must end with its end marker exactly at the
// end of data.
func lzma2Size(data []byte) (int64, error) {
	var size int64
	for i := 0; i < len(data); {
		c := data[i]
		var hdr, body, out int
		switch {
		case c == 0x00:
			if i != len(data)-1 {
				return 0, xzErrorf("block data longer than the LZMA2 stream")
			}
			return size, nil
		case c == 0x01 || c == 0x02:
			if i+3 > len(data) {
				return 0, xzErrorf("LZMA2 chunk header cut short")
			}
			hdr = 3
			out = int(binary.BigEndian.Uint16(data[i+1:])) + 1
			body = out
		case c >= 0x80:
			hdr = 5
			if c >= 0xc0 {
				hdr = 6 // carries new properties
			}
			if i+hdr > len(data) {
				return 0, xzErrorf("LZMA2 chunk header cut short")
			}
			out = int(c&0x1f)<<16 + int(binary.BigEndian.Uint16(data[i+1:])) + 1
			body = int(binary.BigEndian.Uint16(data[i+3:])) + 1
		default:
			return 0, xzErrorf("invalid LZMA2 chunk control byte %#x", c)
		}
		size += int64(out)
		i += hdr + body
	}
	return 0, xzErrorf("LZMA2 stream without its end marker")
}

// decodeLZMA2 decodes one block's LZMA2 stream from r into job.out and returns its check
// value. It enforces the uncompressed size the header announced.
func (x *xzReader) decodeLZMA2(job *xzJob, r io.Reader, h xzBlockHeader, check byte) ([]byte, error) {
	var lz lzma2Decoder // this block's alone: without a size, its end is only its marker
	lr, err := lz.reader(r, h)
	if err != nil {
		return nil, err
	}
	hs := newXZHash(check)
	var total int64
	for {
		buf := x.getBuf()
		n, rerr := io.ReadFull(lr, buf)
		if n > 0 {
			if hs != nil {
				hs.Write(buf[:n])
			}
			total += int64(n)
			if h.uncompressed >= 0 && total > h.uncompressed {
				return nil, xzErrorf("block longer than its header says")
			}
			if err := x.send(job, buf, n); err != nil {
				return nil, err
			}
		} else {
			x.putBuf(buf)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF && lr.EOS() {
			break
		}
		if rerr != nil {
			return nil, xzErrorf("%w", eofIsUnexpected(rerr))
		}
	}
	if !lr.EOS() {
		return nil, xzErrorf("%w", io.ErrUnexpectedEOF)
	}
	if h.uncompressed >= 0 && total != h.uncompressed {
		return nil, xzErrorf("block shorter than its header says")
	}
	job.size = total
	return xzSum(hs), nil
}
