package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/flashline/flashline/agent/flash/internal/decompress"
	"github.com/flashline/flashline/agent/flash/internal/source"
	"github.com/flashline/flashline/agent/flash/target"
	"github.com/flashline/flashline/protocol/bmap"
)

// zeroSeg is the granularity of zero skipping. Only whole zero MiBs are skipped: finer
// skipping (128 KiB was tried) catches a little more of a filesystem's free space but cuts
// the data into many small synchronous O_DIRECT writes, and per-write latency then costs
// more than the skipped bytes save (a 2 GiB ext4 image: 697 vs 691 MiB skipped, 9.4 vs
// 7.4 s).
const zeroSeg = 1 << 20

var zeroBlock = make([]byte, zeroSeg)

// chunk is one buffer's worth of the image at a fixed offset.
type chunk struct {
	buf []byte
	off int64
	n   int
}

// pipeline is one flash's stages and the state they share: the held-back first (and last)
// MiB, the zero-skip decision, and the counts.
type pipeline struct {
	opts Options
	log  *slog.Logger
	src  source.Source
	tgt  *target.Target
	size int64 // expected image length, -1 when unknown

	bufSize   int
	nBufs     int
	skipZero  bool
	head      []byte // the held-back first MiB
	headLen   int
	tail      []byte // the held-back last MiB, when the image ends in the disk's last MiB
	tailStart int64

	skipped  atomic.Int64
	unmapped atomic.Int64 // bytes outside the bmap's ranges
	prog     *progress
}

func newPipeline(opts Options, log *slog.Logger) *pipeline {
	p := &pipeline{opts: opts, log: log, nBufs: opts.Buffers, prog: newProgress(opts.Progress, opts.ProgressInterval)}
	if p.nBufs < 3 {
		p.nBufs = 4
	}
	return p
}

// bufferSize is the pipeline's buffer size for a format. Large buffers make fewer, larger
// writes, which pays when decoding outruns the disk (raw, gzip, zstd). xz decodes far slower
// than any disk writes, so there they would only be memory taken from the decoder: 1 MiB
// buffers cost nothing in speed.
func (p *pipeline) bufferSize(format decompress.Format) int {
	n := p.opts.BufferSize
	if n <= 0 {
		n = 4 << 20
		if format == decompress.Xz {
			n = 1 << 20
		}
	}
	return (n + HoldBack - 1) / HoldBack * HoldBack
}

// memory is what the pipeline's buffers take for a format, the held-back first MiB included.
func (p *pipeline) memory(format decompress.Format) int64 {
	return int64(p.nBufs*p.bufferSize(format) + HoldBack)
}

// prepare makes the target safe to write: its old partition table is wiped so that a flash
// cut short leaves nothing bootable, and zeroing is arranged where it is cheap and certain.
func (p *pipeline) prepare() error {
	if p.tgt.Bounded() {
		if err := p.tgt.Wipe(0, HoldBack); err != nil {
			return fail("%w", err)
		}
		// An old backup GPT at the disk's end could resurrect the old table.
		if sz := p.tgt.Size(); sz > 2*HoldBack {
			if err := p.tgt.Wipe(sz-HoldBack, HoldBack); err != nil {
				return fail("%w", err)
			}
			// An image that reaches the disk's last MiB brings its own backup GPT there,
			// which firmware would use without a primary: hold that MiB back as well.
			if p.size > 2*HoldBack && p.size > sz-HoldBack {
				p.tailStart = p.size - HoldBack
				p.tail = target.AlignedBuffer(HoldBack)
			}
		}
	}
	if !p.opts.NoZeroSkip {
		if !p.tgt.ReadsZeros() && p.size > 0 {
			p.tgt.ZeroRange(0, p.size)
		}
		p.skipZero = p.tgt.ReadsZeros()
	}
	p.head = target.AlignedBuffer(HoldBack)
	return nil
}

// run streams the image through its stages, each its own goroutine passing buffers on:
// read (decoded image into buffers) -> check (SHA-256, or the bmap's range hashes) ->
// write (to the target, first MiB held back). It returns the image's length and hash.
func (p *pipeline) run(ctx context.Context, dec io.Reader) (n int64, sum []byte, err error) {
	g, gctx := errgroup.WithContext(ctx)
	free := make(chan []byte, p.nBufs)
	for range p.nBufs {
		free <- target.AlignedBuffer(p.bufSize)
	}
	toCheck := make(chan chunk, p.nBufs)
	toWrite := make(chan chunk, p.nBufs)
	g.Go(func() (err error) {
		defer close(toCheck)
		n, err = p.read(ctx, gctx, dec, free, toCheck)
		return err
	})
	g.Go(func() (err error) {
		defer close(toWrite)
		sum, err = p.check(gctx, toCheck, toWrite)
		return err
	})
	for range p.writers() {
		g.Go(func() error { return p.write(toWrite, free) })
	}
	if err := g.Wait(); err != nil {
		return 0, nil, err
	}
	return n, sum, nil
}

// read is the first stage: it fills free buffers from the decoded image, in order, and
// returns the image's length. ctx is the caller's (to tell an interruption from a stage's
// failure), gctx the stages'.
func (p *pipeline) read(ctx, gctx context.Context, dec io.Reader, free <-chan []byte, out chan<- chunk) (int64, error) {
	var off int64
	for {
		var buf []byte
		select {
		case buf = <-free:
		case <-gctx.Done():
			return off, gctx.Err()
		}
		if hold := p.opts.Hold; hold != nil {
			if err := hold(gctx); err != nil {
				return off, fail("interrupted after %d bytes: %w", off, err)
			}
		}
		n, err := io.ReadFull(dec, buf)
		if n > 0 {
			if p.size >= 0 && off+int64(n) > p.size {
				return off, fail("image is longer than %d bytes", p.size)
			}
			if p.tgt.Bounded() && off+int64(n) > p.tgt.Size() {
				return off, fail("image is larger than the target (%d bytes)", p.tgt.Size())
			}
			select {
			case out <- chunk{buf: buf, off: off, n: n}:
			case <-gctx.Done():
				return off, gctx.Err()
			}
			off += int64(n)
		}
		switch {
		case err == nil:
			continue
		// io.ReadFull reports the stream's normal end inside a buffer as a bare
		// io.ErrUnexpectedEOF; decoders and sources report a truncated stream with a
		// wrapped error, which is a failure.
		case err == io.EOF, err == io.ErrUnexpectedEOF && n > 0:
			return off, nil
		}
		if ctx.Err() != nil {
			return off, fail("interrupted after %d bytes: %w", off, ctx.Err())
		}
		return off, fail("after %d image bytes: %w", off, err)
	}
}

// check is the second stage: it hashes every chunk before passing it on to the writers. With
// a bmap the range hashes replace the image's: a range is checked before its last chunk goes
// on, so a bad range stops the flash at that range (and the sum is nil).
func (p *pipeline) check(gctx context.Context, in <-chan chunk, out chan<- chunk) ([]byte, error) {
	h := sha256.New()
	add := func(b []byte) error { h.Write(b); return nil }
	var chk *bmap.Checker
	if bm := p.opts.Bmap; bm != nil {
		chk = bmap.NewChecker(bm)
		add = chk.Write
	}
	for c := range in {
		if err := add(c.buf[:c.n]); err != nil {
			return nil, fail("%w", err)
		}
		select {
		case out <- c:
		case <-gctx.Done():
			return nil, gctx.Err()
		}
	}
	if chk != nil {
		if err := chk.Close(); err != nil {
			return nil, fail("%w", err)
		}
		return nil, nil
	}
	return h.Sum(nil), nil
}

// writers is how many write stages run at once.
func (p *pipeline) writers() int {
	if p.opts.Writers > 0 {
		return p.opts.Writers
	}
	// A device's queue gains from two writes in flight; on a file, O_DIRECT writes that
	// extend it are serialised by the filesystem and a second writer only turns them into
	// slower hole fills.
	if p.tgt.Kind == target.BlockDevice {
		return 2
	}
	return 1
}

// write is the last stage: it writes chunks and gives their buffers back to read.
func (p *pipeline) write(in <-chan chunk, free chan<- []byte) error {
	for c := range in {
		if err := p.writeChunk(c); err != nil {
			return err
		}
		free <- c.buf
	}
	return nil
}

// writeChunk writes one buffer, keeping the first MiB back and skipping zero segments when
// the target reads zeros.
func (p *pipeline) writeChunk(c chunk) error {
	if bm := p.opts.Bmap; bm != nil {
		var mapped int64
		err := bm.Spans(c.off, int64(c.n), func(off, n int64) error {
			mapped += n
			return p.writeSpan(c.buf[off-c.off:off-c.off+n], off)
		})
		p.unmapped.Add(int64(c.n) - mapped)
		p.prog.add(int64(c.n) - mapped)
		return err
	}
	return p.writeSpan(c.buf[:c.n], c.off)
}

// writeSpan writes image bytes data at off: into the held-back first or last MiB, or to
// the target, skipping zero runs where the target reads zeros.
func (p *pipeline) writeSpan(data []byte, off int64) error {
	if off < HoldBack {
		k := copy(p.head[off:], data)
		p.headLen = max(p.headLen, int(off)+k)
		data, off = data[k:], off+int64(k)
		p.prog.add(int64(k))
	}
	if p.tail != nil && off+int64(len(data)) > p.tailStart {
		cut := max(0, p.tailStart-off)
		copy(p.tail[off+cut-p.tailStart:], data[cut:])
		p.prog.add(int64(len(data)) - cut)
		data = data[:cut]
	}
	for len(data) > 0 {
		seg := data
		if p.skipZero {
			// Find the next run of non-zero segments and write it in one call.
			i := 0
			for i < len(data) && bytes.Equal(data[i:min(i+zeroSeg, len(data))], zeroBlock[:min(zeroSeg, len(data)-i)]) {
				i += zeroSeg
			}
			i = min(i, len(data))
			if i > 0 {
				p.skipped.Add(int64(i))
				p.prog.add(int64(i))
				data, off = data[i:], off+int64(i)
				continue
			}
			j := zeroSeg
			for j < len(data) && !bytes.Equal(data[j:min(j+zeroSeg, len(data))], zeroBlock[:min(zeroSeg, len(data)-j)]) {
				j += zeroSeg
			}
			seg = data[:min(j, len(data))]
		}
		if err := p.writeAt(seg, off); err != nil {
			return err
		}
		p.prog.add(int64(len(seg)))
		data, off = data[len(seg):], off+int64(len(seg))
	}
	return nil
}

// writeAt writes b at off on the target.
func (p *pipeline) writeAt(b []byte, off int64) error {
	if err := p.tgt.WriteAll(b, off); err != nil {
		return fail("%w", err)
	}
	return nil
}

// verifyReadback hashes what the target now holds (first MiB from memory, where it still
// waits) and compares it with the stream's hash.
func (p *pipeline) verifyReadback(ctx context.Context, n int64, want []byte) error {
	if p.opts.Bmap != nil {
		return p.verifyRanges(ctx)
	}
	h := sha256.New()
	h.Write(p.head[:min(int64(p.headLen), n)])
	buf := target.AlignedBuffer(p.bufSize)
	p.prog.set("verify", min(n, HoldBack))
	end := n
	if p.tail != nil {
		end = min(n, p.tailStart)
	}
	for off := int64(HoldBack); off < end; {
		if ctx.Err() != nil {
			return fail("read-back interrupted: %w", ctx.Err())
		}
		k := min(int64(len(buf)), end-off)
		al := k &^ (target.Align - 1)
		if al == 0 {
			al = k
		}
		m, err := p.tgt.ReadAt(buf[:al], off)
		if int64(m) != al {
			return fail("read-back at byte %d: %w", off, errOr(err, io.ErrUnexpectedEOF))
		}
		h.Write(buf[:m])
		off += int64(m)
		p.prog.set("verify", off)
	}
	if p.tail != nil && n > p.tailStart {
		h.Write(p.tail[:n-p.tailStart]) // still in memory, committed with the first MiB
	}
	if got := h.Sum(nil); !equalBytes(got, want) {
		return fail("read-back sha256 mismatch: got %x want %x", got, want)
	}
	return nil
}

// verifyRanges reads the bmap's ranges back and checks each against its SHA-256; the
// held-back first and last MiB are still in memory and checked from there.
func (p *pipeline) verifyRanges(ctx context.Context) error {
	bm := p.opts.Bmap
	buf := target.AlignedBuffer(p.bufSize)
	p.prog.set("verify", 0)
	for i, r := range bm.Ranges {
		roff, rend := bm.Bytes(r)
		h := sha256.New()
		for off := roff; off < rend; {
			if ctx.Err() != nil {
				return fail("read-back interrupted: %w", ctx.Err())
			}
			k := min(int64(len(buf)), rend-off)
			switch {
			case off < HoldBack:
				k = min(k, HoldBack-off)
				h.Write(p.head[off : off+k])
			case p.tail != nil && off >= p.tailStart:
				h.Write(p.tail[off-p.tailStart : off-p.tailStart+k])
			default:
				if p.tail != nil {
					k = min(k, p.tailStart-off)
				}
				// O_DIRECT wants aligned offsets and lengths: read the aligned span around.
				a := off &^ (target.Align - 1)
				e := min((off+k+target.Align-1)&^(target.Align-1), a+int64(len(buf)))
				k = min(k, e-off)
				m, err := p.tgt.ReadAt(buf[:e-a], a)
				if int64(m) < off+k-a {
					return fail("read-back at byte %d: %w", off, errOr(err, io.ErrUnexpectedEOF))
				}
				h.Write(buf[off-a : off-a+k])
			}
			off += k
			p.prog.add(k)
		}
		if got := h.Sum(nil); [sha256.Size]byte(got) != r.SHA256 {
			return fail("read-back of bmap range %d (blocks %d-%d): sha256 %x, the bmap says %x", i+1, r.First, r.Last, got, r.SHA256)
		}
	}
	return nil
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// commitHead writes the held-back last MiB (when there is one) and then the first MiB,
// syncing each, and with verify reads each back.
func (p *pipeline) commitHead(n int64, verify bool) error {
	if p.tail != nil && n > p.tailStart {
		if err := p.tgt.Commit(p.tail[:n-p.tailStart], p.tailStart, verify, "last MiB"); err != nil {
			return fail("%w", err)
		}
	}
	if err := p.tgt.Commit(p.head[:p.headLen], 0, verify, "first MiB"); err != nil {
		return fail("%w", err)
	}
	return nil
}
