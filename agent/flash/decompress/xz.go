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
	"sync"

	"github.com/ulikunitz/xz/lzma"
)

// The xz container (tukaani.org xz-file-format 1.2.0) is parsed here rather than by
// ulikunitz/xz's Reader because that Reader decodes one block after another on one core, and
// its API exposes no block boundaries. `xz -T` writes the compressed and uncompressed size in
// every block header, so the blocks can be cut out of the stream as it arrives and handed to
// workers; each worker runs ulikunitz's LZMA2 decoder (lzma.Reader2) on its block. Blocks
// without a compressed size (single-threaded xz) or too large to buffer are decoded inline
// from the stream, one after the other, so memory stays bounded either way.

const (
	xzPieceSize = 1 << 20
	// xzLookahead is how many decoded pieces a block decoded in parallel may hold while
	// earlier blocks are still being consumed, at least; the memory budget may allow up to
	// xzMaxLookahead. It trades memory for parallelism: a worker stalls once it is this far
	// ahead of the writer. On a 2 GiB ext4 image made with xz -T2 (24 MiB blocks), 6 pieces
	// took 29 s, 24 pieces (the whole block) 21 s.
	xzLookahead    = 6
	xzMaxLookahead = 32
	// xzStreamLookahead is the look-ahead of a block decoded straight from the stream: that
	// block is the one being consumed, so a little decoupling is all it needs.
	xzStreamLookahead = 2
	// xzMaxBuffered is the largest compressed block read into memory for a worker.
	xzMaxBuffered = 16 << 20
	// xzMaxParallelDict is the largest LZMA2 dictionary a worker may allocate; blocks with a
	// bigger one (xz -8/-9) are decoded inline so only one such dictionary exists at a time.
	xzMaxParallelDict = 16 << 20
	// xzMaxDict is the largest dictionary accepted at all: xz -9 uses 64 MiB.
	xzMaxDict = 64 << 20
)

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

// xzPiece is a run of decoded bytes; a nil buf stands for n zero bytes, which costs no memory
// while it waits (disk images are largely zeros).
type xzPiece struct {
	buf []byte
	n   int
}

// xzJob is one block's decoded output, delivered in order to the consumer.
type xzJob struct {
	out chan xzPiece
	// Set by the producer before out is closed:
	err      error
	size     int64 // uncompressed bytes
	unpadded int64 // header + compressed data + check, as the index records it
	// index, when not nil, makes this a marker job: the stream's index, checked by the
	// consumer against the blocks it received.
	index []xzRecord
}

type xzRecord struct{ unpadded, size int64 }

// xzBlock is what a worker needs to decode one buffered block.
type xzBlock struct {
	job   *xzJob
	hdr   xzBlockHeader
	check byte
	data  []byte // compressed data, padding and check
}

type xzReader struct {
	done  chan struct{}
	once  sync.Once
	order chan *xzJob
	work  chan xzBlock
	// slots holds one token per decoder that may run (workers, or the splitter decoding a
	// block inline). A block's compressed data is read only once it has a slot, so at most
	// one compressed block and one dictionary per decoder are in memory.
	slots chan struct{}
	// workers is how many decoders may run at once; budget, when > 0, is the memory they
	// may hold together, which decides per block whether parallel decoding fits.
	workers int
	budget  int64
	// The splitter's own decoder, for blocks it decodes straight from the stream.
	inline  lzma2Decoder
	framer  lzma2Framer
	free    chan []byte // decoded pieces for reuse
	cfree   chan []byte // compressed block buffers for reuse
	wg      sync.WaitGroup
	splitMu sync.Mutex
	split   error // the splitter's error, valid once order is closed

	cur     *xzJob
	records []xzRecord
	piec    xzPiece
	off     int
	err     error
}

func newXZReader(r *bufio.Reader, workers int, budget int64) *xzReader {
	if workers < 1 {
		workers = 1
	}
	x := &xzReader{
		workers: workers,
		budget:  budget,
		done:    make(chan struct{}),
		// The consumer's block plus workers-1 queued ones keep every worker busy; each
		// queued block holds its compressed data and decoded pieces, so no more.
		order: make(chan *xzJob, max(1, workers-1)),
		cfree: make(chan []byte, 1), // one idle block buffer: a pool of more is memory held for nothing
		work:  make(chan xzBlock),
		slots: make(chan struct{}, workers),
		// Every decoder holds at most its lookahead plus the piece it fills, the consumer
		// one more: a pool that size means no piece is ever allocated twice.
		free: make(chan []byte, workers*(xzMaxLookahead+1)+1),
	}
	for range workers {
		x.wg.Add(1)
		go x.worker()
	}
	go x.splitter(r)
	return x
}

// Close stops every goroutine of the decoder.
func (x *xzReader) Close() {
	x.once.Do(func() { close(x.done) })
}

func (x *xzReader) getBuf() []byte {
	select {
	case b := <-x.free:
		return b
	default:
		return make([]byte, xzPieceSize)
	}
}

// blockBuf returns a buffer of n bytes for a compressed block, reusing a returned one when it
// is big enough: blocks of one file are mostly the same size, and a fresh allocation per
// block is garbage the GC must chase.
func (x *xzReader) blockBuf(n int) []byte {
	select {
	case b := <-x.cfree:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n)
}

func (x *xzReader) putBuf(b []byte) {
	select {
	case x.free <- b:
	default:
	}
}

func (x *xzReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if x.err != nil {
			return n, x.err
		}
		if x.off < x.piec.n {
			var k int
			if x.piec.buf == nil {
				k = min(len(p)-n, x.piec.n-x.off)
				clear(p[n : n+k])
			} else {
				k = copy(p[n:], x.piec.buf[x.off:x.piec.n])
			}
			x.off += k
			n += k
			continue
		}
		if x.piec.buf != nil {
			x.putBuf(x.piec.buf)
		}
		x.piec, x.off = xzPiece{}, 0
		if n > 0 {
			// Hand over what we have rather than block on the next block.
			return n, nil
		}
		x.err = x.next()
	}
	return n, nil
}

// next loads the next piece, moving on to the next block when one is finished.
func (x *xzReader) next() error {
	for {
		if x.cur == nil {
			select {
			case j, ok := <-x.order:
				if !ok {
					x.splitMu.Lock()
					defer x.splitMu.Unlock()
					if x.split != nil {
						return x.split
					}
					return io.EOF
				}
				if j.index != nil {
					if err := checkIndex(j.index, x.records); err != nil {
						return err
					}
					x.records = x.records[:0]
					continue
				}
				x.cur = j
			case <-x.done:
				return xzErrorf("reader closed")
			}
		}
		select {
		case pc, ok := <-x.cur.out:
			if !ok {
				if x.cur.err != nil {
					return x.cur.err
				}
				x.records = append(x.records, xzRecord{x.cur.unpadded, x.cur.size})
				x.cur = nil
				continue
			}
			x.piec = pc
			return nil
		case <-x.done:
			return xzErrorf("reader closed")
		}
	}
}

func (x *xzReader) worker() {
	defer x.wg.Done()
	var lz lzma2Decoder
	var src bytes.Reader
	for {
		select {
		case b := <-x.work:
			x.decodeBuffered(&lz, &src, b)
			<-x.slots
		case <-x.done:
			return
		}
	}
}

func (x *xzReader) decodeBuffered(lz *lzma2Decoder, src *bytes.Reader, b xzBlock) {
	job := b.job
	defer close(job.out)
	csize := int(b.hdr.compressed)
	pad := (4 - csize%4) % 4
	var sum []byte
	var err error
	if b.hdr.uncompressed > 0 {
		sum, err = x.decodeReusing(lz, src, job, b.data[:csize], b.hdr, b.check)
	} else {
		rd := bytes.NewReader(b.data[:csize])
		sum, err = x.decodeLZMA2(job, rd, b.hdr, b.check)
		if err == nil && rd.Len() != 0 {
			err = xzErrorf("block data longer than the LZMA2 stream")
		}
	}
	if err == nil {
		err = verifyPadCheck(b.data[csize:], pad, sum)
	}
	job.err = err
	select {
	case x.cfree <- b.data[:0]:
	default:
	}
}

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

// emit reads exactly size bytes from lr into pieces for job, hashing them with hs.
func (x *xzReader) emit(job *xzJob, lr io.Reader, size int64, hs hash.Hash) ([]byte, error) {
	for left := size; left > 0; {
		buf := x.getBuf()
		// Asking for exactly what is left of the block keeps Reader2 from reading the
		// next chunk header, which belongs to the next block.
		n, err := io.ReadFull(lr, buf[:min(int64(len(buf)), left)])
		if err != nil {
			x.putBuf(buf)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, xzErrorf("block shorter than its header says: %w", io.ErrUnexpectedEOF)
			}
			if _, ok := errors.AsType[*FormatError](err); ok {
				return nil, err // already says what is wrong with the stream
			}
			return nil, xzErrorf("%w", err)
		}
		left -= int64(n)
		if hs != nil {
			hs.Write(buf[:n])
		}
		if err := x.send(job, buf, n); err != nil {
			return nil, err
		}
	}
	return xzSum(hs), nil
}

// send queues n decoded bytes in buf for the consumer; an all-zero piece goes without its
// buffer.
func (x *xzReader) send(job *xzJob, buf []byte, n int) error {
	pc := xzPiece{buf: buf, n: n}
	if isZero(buf[:n]) {
		x.putBuf(buf)
		pc.buf = nil
	}
	select {
	case job.out <- pc:
		return nil
	case <-x.done:
		return xzErrorf("reader closed")
	}
}

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

var zeroPiece = make([]byte, xzPieceSize)

func isZero(b []byte) bool { return bytes.Equal(b, zeroPiece[:len(b)]) }

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
	case 0x01:
		return crc32.NewIEEE()
	case 0x04:
		return crc64.New(crc64Table)
	case 0x0a:
		return sha256.New()
	}
	return nil
}

func checkSize(check byte) (int, error) {
	switch check {
	case 0x00:
		return 0, nil
	case 0x01:
		return 4, nil
	case 0x04:
		return 8, nil
	case 0x0a:
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

// splitter walks the container: stream headers, blocks, indexes, footers and padding. It
// owns the input; jobs go to the consumer in stream order.
func (x *xzReader) splitter(r *bufio.Reader) {
	err := x.splitStreams(r)
	x.splitMu.Lock()
	x.split = err
	x.splitMu.Unlock()
	close(x.order)
}

func (x *xzReader) sendJob(j *xzJob) error {
	select {
	case x.order <- j:
		return nil
	case <-x.done:
		return xzErrorf("reader closed")
	}
}

func (x *xzReader) splitStreams(r *bufio.Reader) error {
	for first := true; ; first = false {
		if !first {
			// Stream padding: zero bytes in multiples of four, then another stream or the end.
			pad := 0
			for {
				b, err := r.ReadByte()
				if err == io.EOF {
					if pad%4 != 0 {
						return xzErrorf("stream padding not a multiple of four bytes")
					}
					return nil
				}
				if err != nil {
					return xzErrorf("%w", err)
				}
				if b != 0 {
					r.UnreadByte()
					break
				}
				pad++
			}
			if pad%4 != 0 {
				return xzErrorf("stream padding not a multiple of four bytes")
			}
		}
		if err := x.splitStream(r); err != nil {
			return err
		}
	}
}

func readFullXZ(r io.Reader, p []byte) error {
	if _, err := io.ReadFull(r, p); err != nil {
		return xzErrorf("%w", eofIsUnexpected(err))
	}
	return nil
}

func (x *xzReader) splitStream(r *bufio.Reader) error {
	var sh [12]byte
	if err := readFullXZ(r, sh[:]); err != nil {
		return err
	}
	if !bytes.Equal(sh[:6], xzMagic) {
		return xzErrorf("bad stream header magic")
	}
	if crc32.ChecksumIEEE(sh[6:8]) != binary.LittleEndian.Uint32(sh[8:12]) {
		return xzErrorf("stream header CRC mismatch")
	}
	if sh[6] != 0 || sh[7]&0xf0 != 0 {
		return xzErrorf("unsupported stream flags")
	}
	check := sh[7]
	csz, err := checkSize(check)
	if err != nil {
		return err
	}
	for {
		b, err := r.ReadByte()
		if err != nil {
			return xzErrorf("%w", eofIsUnexpected(err))
		}
		if b == 0 {
			return x.readIndexAndFooter(r, sh[6:8])
		}
		hdr, err := readXZBlockHeader(r, b)
		if err != nil {
			return err
		}
		select {
		case x.slots <- struct{}{}:
		case <-x.done:
			return xzErrorf("reader closed")
		}
		lookahead := x.lookahead(hdr)
		job := &xzJob{out: make(chan xzPiece, max(lookahead, xzStreamLookahead))}
		if lookahead > 0 {
			pad := (4 - hdr.compressed%4) % 4
			data := x.blockBuf(int(hdr.compressed + pad + int64(csz)))
			if err := readFullXZ(r, data); err != nil {
				return err
			}
			job.unpadded = int64(hdr.size) + hdr.compressed + int64(csz)
			if err := x.sendJob(job); err != nil {
				return err
			}
			select {
			case x.work <- xzBlock{job: job, hdr: hdr, check: check, data: data}:
			case <-x.done:
				return xzErrorf("reader closed")
			}
			continue
		}
		// Inline: decode straight from the stream. The consumer gets the job first so it
		// can drain the output while we produce it.
		if err := x.sendJob(job); err != nil {
			return err
		}
		if hdr.uncompressed > 0 {
			err = x.decodeStreamed(r, job, hdr, check, csz)
		} else {
			err = x.decodeInline(r, job, hdr, check, csz)
		}
		<-x.slots
		if err != nil {
			return err
		}
	}
}

// lookahead decides how a block is decoded. A positive result is the look-ahead, in pieces,
// of a block read into memory and handed to a worker, so that it is decoded while the block
// before it is still being consumed; zero means the block is decoded straight from the
// stream. Parallel decoding pays only with a second decoder and costs, per decoder, the
// block's compressed data, its dictionary and the look-ahead, which must fit the budget;
// blocks without sizes in their header, huge blocks and huge dictionaries are streamed.
func (x *xzReader) lookahead(h xzBlockHeader) int {
	if x.workers < 2 || h.compressed < 0 || h.compressed > xzMaxBuffered || h.dictCap > xzMaxParallelDict {
		return 0
	}
	dict, pieces := h.dictCap, xzMaxLookahead
	if h.uncompressed >= 0 {
		dict = min(dict, h.uncompressed)
		pieces = min(pieces, int((h.uncompressed+xzPieceSize-1)/xzPieceSize))
	}
	if x.budget <= 0 {
		return min(pieces, xzLookahead)
	}
	// Each decoder holds its look-ahead plus the piece it is filling.
	fit := int((x.budget/int64(x.workers)-dict-h.compressed)/xzPieceSize) - 1
	if fit < min(pieces, xzLookahead) {
		return 0
	}
	return max(1, min(pieces, fit))
}

// decodeStreamed decodes a block whose header gives its uncompressed size straight from the
// stream, through the splitter's shared decoder: no compressed copy, no new dictionary.
func (x *xzReader) decodeStreamed(r *bufio.Reader, job *xzJob, hdr xzBlockHeader, check byte, csz int) error {
	f := &x.framer
	f.reset(r)
	lr, err := x.inline.reader(f, hdr)
	var sum []byte
	if err == nil {
		sum, err = x.emit(job, lr, hdr.uncompressed, newXZHash(check))
	}
	if err == nil {
		err = f.finish(hdr.uncompressed)
	}
	if err != nil {
		x.inline.r = nil // a failed Reader2 stays failed
		if f.cut {
			err = xzErrorf("%w", io.ErrUnexpectedEOF)
		}
	}
	if err == nil && hdr.compressed >= 0 && f.n != hdr.compressed {
		err = xzErrorf("block has %d compressed bytes, its header says %d", f.n, hdr.compressed)
	}
	job.size = hdr.uncompressed
	return x.endStreamed(r, job, hdr, f.n, csz, sum, err)
}

// endStreamed reads the padding and check after a block decoded from the stream (n bytes of
// compressed data), verifies them and closes the block's job.
func (x *xzReader) endStreamed(r *bufio.Reader, job *xzJob, hdr xzBlockHeader, n int64, csz int, sum []byte, err error) error {
	if err == nil {
		pad := int((4 - n%4) % 4)
		tail := make([]byte, pad+csz)
		if err = readFullXZ(r, tail); err == nil {
			err = verifyPadCheck(tail, pad, sum)
		}
	}
	job.unpadded = int64(hdr.size) + n + int64(csz)
	job.err = err
	close(job.out)
	// The consumer reports the error; stopping here keeps the stream position sane.
	return err
}

func (x *xzReader) decodeInline(r *bufio.Reader, job *xzJob, hdr xzBlockHeader, check byte, csz int) error {
	cr := &countReader{r: r}
	var src io.Reader = cr
	if hdr.compressed >= 0 {
		src = io.LimitReader(cr, hdr.compressed)
	}
	sum, err := x.decodeLZMA2(job, src, hdr, check)
	if err == nil && hdr.compressed >= 0 && cr.n != hdr.compressed {
		err = xzErrorf("block data longer than the LZMA2 stream")
	}
	return x.endStreamed(r, job, hdr, cr.n, csz, sum, err)
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
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
	var v uint64
	for i := 0; i < 9 && i < len(p); i++ {
		b := p[i]
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, nil, xzErrorf("non-minimal integer encoding")
			}
			if v > 1<<63-1 {
				return 0, nil, xzErrorf("integer overflow")
			}
			return int64(v), p[i+1:], nil
		}
	}
	return 0, nil, xzErrorf("truncated integer")
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
	if string(ft[10:12]) != "YZ" || !bytes.Equal(ft[8:10], flags) {
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
	var v uint64
	for i := range 9 {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, xzErrorf("non-minimal integer encoding")
			}
			return v, nil
		}
	}
	return 0, xzErrorf("index integer too long")
}
