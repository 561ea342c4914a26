package decompress

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"sync"

	"github.com/flashline/flashline/internal/xzformat"
)

// The xz container (tukaani.org xz-file-format 1.2.0) is parsed here rather than by
// ulikunitz/xz's Reader because that Reader decodes one block after another on one core, and
// its API exposes no block boundaries. `xz -T` writes the compressed and uncompressed size in
// every block header, so the blocks can be cut out of the stream as it arrives and handed to
// workers; each worker runs ulikunitz's LZMA2 decoder (lzma.Reader2) on its block. Blocks
// without a compressed size (single-threaded xz) or too large to buffer are decoded inline
// from the stream, one after the other, so memory stays bounded either way.
//
// This file is the scheduling: the splitter cutting blocks out of the stream, the workers,
// and the consumer putting their output back in order. xz_container.go parses the container,
// xz_lzma2.go frames LZMA2 for ulikunitz's decoder.

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

var zeroPiece = make([]byte, xzPieceSize)

func isZero(b []byte) bool { return bytes.Equal(b, zeroPiece[:len(b)]) }

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

func (x *xzReader) splitStream(r *bufio.Reader) error {
	var sh [12]byte
	if err := readFullXZ(r, sh[:]); err != nil {
		return err
	}
	if string(sh[:6]) != xzformat.HeaderMagic {
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
