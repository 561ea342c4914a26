package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flashline/flashline/agent/flash/decompress"
	"github.com/flashline/flashline/agent/flash/source"
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

	written  atomic.Int64 // bytes handled by the writers
	skipped  atomic.Int64
	unmapped atomic.Int64 // bytes outside the bmap's ranges

	phaseMu   sync.Mutex
	phase     string
	lastPhase string // phase of the previous snapshot
	progStop  chan struct{}
	progDone  chan struct{}
	progOnce  sync.Once
	rate      float64
	lastT     time.Time
	lastW     int64
	lastEmit  time.Time
	started   time.Time
}

func newPipeline(opts Options, log *slog.Logger) *pipeline {
	p := &pipeline{opts: opts, log: log, nBufs: opts.Buffers}
	if p.nBufs < 3 {
		p.nBufs = 4
	}
	p.phase = "write"
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
			return fail("%v", err)
		}
		// An old backup GPT at the disk's end could resurrect the old table.
		if sz := p.tgt.Size(); sz > 2*HoldBack {
			if err := p.tgt.Wipe(sz-HoldBack, HoldBack); err != nil {
				return fail("%v", err)
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

// run streams the image through reader -> hasher -> writers and returns its length and hash.
func (p *pipeline) run(ctx context.Context, dec io.Reader) (int64, []byte, error) {
	g, gctx := errgroup.WithContext(ctx)
	free := make(chan []byte, p.nBufs)
	for range p.nBufs {
		free <- target.AlignedBuffer(p.bufSize)
	}
	toHash := make(chan chunk, p.nBufs)
	toWrite := make(chan chunk, p.nBufs)
	var total int64
	var sum []byte

	g.Go(func() error {
		defer close(toHash)
		var off int64
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			if hold := p.opts.Hold; hold != nil {
				if err := hold(gctx); err != nil {
					return fail("interrupted after %d bytes: %v", off, err)
				}
			}
			n, err := io.ReadFull(dec, buf)
			if n > 0 {
				if p.size >= 0 && off+int64(n) > p.size {
					return fail("image is longer than %d bytes", p.size)
				}
				if p.tgt.Bounded() && off+int64(n) > p.tgt.Size() {
					return fail("image is larger than the target (%d bytes)", p.tgt.Size())
				}
				select {
				case toHash <- chunk{buf: buf, off: off, n: n}:
				case <-gctx.Done():
					return gctx.Err()
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
				total = off
				return nil
			}
			if ctx.Err() != nil {
				return fail("interrupted after %d bytes: %v", off, ctx.Err())
			}
			return fail("after %d image bytes: %v", off, err)
		}
	})
	g.Go(func() error {
		defer close(toWrite)
		if bm := p.opts.Bmap; bm != nil {
			// The range hashes replace the image's: a range is checked before its last
			// chunk goes to the writers, so a bad range stops the flash at that range.
			chk := bmap.NewChecker(bm)
			for c := range toHash {
				if err := chk.Write(c.buf[:c.n]); err != nil {
					return fail("%v", err)
				}
				select {
				case toWrite <- c:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			if err := chk.Close(); err != nil {
				return fail("%v", err)
			}
			return nil
		}
		h := sha256.New()
		for c := range toHash {
			h.Write(c.buf[:c.n])
			select {
			case toWrite <- c:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		sum = h.Sum(nil)
		return nil
	})
	writers := p.opts.Writers
	if writers <= 0 {
		// A device's queue gains from two writes in flight; on a file, O_DIRECT writes
		// that extend it are serialised by the filesystem and a second writer only turns
		// them into slower hole fills.
		writers = 1
		if p.tgt.Kind == target.BlockDevice {
			writers = 2
		}
	}
	for range writers {
		g.Go(func() error {
			for c := range toWrite {
				if err := p.writeChunk(c); err != nil {
					return err
				}
				free <- c.buf
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, nil, err
	}
	return total, sum, nil
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
		p.written.Add(int64(c.n) - mapped)
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
		p.written.Add(int64(k))
	}
	if p.tail != nil && off+int64(len(data)) > p.tailStart {
		cut := max(0, p.tailStart-off)
		copy(p.tail[off+cut-p.tailStart:], data[cut:])
		p.written.Add(int64(len(data)) - cut)
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
				p.written.Add(int64(i))
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
		p.written.Add(int64(len(seg)))
		data, off = data[len(seg):], off+int64(len(seg))
	}
	return nil
}

// writeAt writes p at off, splitting an unaligned tail off so the bulk still goes O_DIRECT.
func (p *pipeline) writeAt(b []byte, off int64) error {
	al := len(b) &^ (target.Align - 1)
	for _, part := range [][]byte{b[:al], b[al:]} {
		if len(part) == 0 {
			continue
		}
		n, err := p.tgt.WriteAt(part, off)
		if err == nil && n != len(part) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return fail("write at byte %d: %v", off, err)
		}
		off += int64(n)
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
	p.setPhase("verify", min(n, HoldBack))
	end := n
	if p.tail != nil {
		end = min(n, p.tailStart)
	}
	for off := int64(HoldBack); off < end; {
		if ctx.Err() != nil {
			return fail("read-back interrupted: %v", ctx.Err())
		}
		k := min(int64(len(buf)), end-off)
		al := k &^ (target.Align - 1)
		if al == 0 {
			al = k
		}
		m, err := p.tgt.ReadAt(buf[:al], off)
		if int64(m) != al {
			return fail("read-back at byte %d: %v", off, errOr(err, io.ErrUnexpectedEOF))
		}
		h.Write(buf[:m])
		off += int64(m)
		p.written.Store(off)
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
	p.setPhase("verify", 0)
	for i, r := range bm.Ranges {
		roff, rend := bm.Bytes(r)
		h := sha256.New()
		for off := roff; off < rend; {
			if ctx.Err() != nil {
				return fail("read-back interrupted: %v", ctx.Err())
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
					return fail("read-back at byte %d: %v", off, errOr(err, io.ErrUnexpectedEOF))
				}
				h.Write(buf[off-a : off-a+k])
			}
			off += k
			p.written.Add(k)
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
		if err := p.commit(p.tail[:n-p.tailStart], p.tailStart, verify, "last MiB"); err != nil {
			return err
		}
	}
	return p.commit(p.head[:p.headLen], 0, verify, "first MiB")
}

func (p *pipeline) commit(b []byte, off int64, verify bool, what string) error {
	if len(b) == 0 {
		return nil
	}
	if err := p.writeAt(b, off); err != nil {
		return err
	}
	if err := p.tgt.Sync(off + int64(len(b))); err != nil {
		return fail("%v", err)
	}
	if !verify {
		return nil
	}
	back := target.AlignedBuffer(len(b))
	al := len(b) &^ (target.Align - 1)
	if off%target.Align != 0 {
		al = 0 // an unaligned offset cannot go O_DIRECT: read it all through the cache
	}
	for _, r := range [][2]int{{0, al}, {al, len(b)}} {
		if r[1] == r[0] {
			continue
		}
		if m, err := p.tgt.ReadAt(back[r[0]:r[1]], off+int64(r[0])); m != r[1]-r[0] {
			return fail("read-back of the %s: %v", what, errOr(err, io.ErrUnexpectedEOF))
		}
	}
	if !bytes.Equal(back, b) {
		return fail("read-back of the %s differs from the image", what)
	}
	return nil
}

// --- progress ---

// setPhase switches phase; with restart >= 0 the written counter restarts from there (the
// read-back counts its own bytes). Both change together so no snapshot mixes them.
func (p *pipeline) setPhase(s string, restart int64) {
	p.phaseMu.Lock()
	defer p.phaseMu.Unlock()
	p.phase = s
	if restart >= 0 {
		p.written.Store(restart)
	}
}

func (p *pipeline) interval() time.Duration {
	if p.opts.ProgressInterval > 0 {
		return p.opts.ProgressInterval
	}
	return 250 * time.Millisecond
}

func (p *pipeline) startProgress() {
	if p.opts.Progress == nil {
		return
	}
	p.progStop = make(chan struct{})
	p.progDone = make(chan struct{})
	p.lastT = time.Now()
	p.started = p.lastT
	go func() {
		defer close(p.progDone)
		t := time.NewTicker(p.interval())
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.emit()
			case <-p.progStop:
				return
			}
		}
	}()
}

func (p *pipeline) stopProgress() {
	if p.progStop == nil {
		return
	}
	p.progOnce.Do(func() {
		close(p.progStop)
		<-p.progDone
	})
}

func (p *pipeline) snapshot() Progress {
	now := time.Now()
	p.phaseMu.Lock()
	phase, w := p.phase, p.written.Load()
	p.phaseMu.Unlock()
	if phase != p.lastPhase {
		// A new phase counts from its own start: no rate across the boundary.
		p.lastPhase, p.rate, p.lastW, p.lastT = phase, 0, w, now
	}
	if dt := now.Sub(p.lastT).Seconds(); dt > 0 {
		inst := float64(w-p.lastW) / dt
		if p.rate == 0 {
			p.rate = inst
		} else {
			p.rate = 0.7*p.rate + 0.3*inst
		}
	}
	p.lastT, p.lastW = now, w
	pr := Progress{Phase: phase, Written: w, Rate: p.rate}
	if p.size > 0 {
		pr.Total = p.size
	}
	if p.src != nil {
		pr.SourceRead, pr.SourceTotal = p.src.Stats().Read, p.src.Size()
		if pr.SourceTotal < 0 {
			pr.SourceTotal = 0
		}
	}
	switch {
	case pr.Total > 0 && p.rate > 0:
		pr.ETA = time.Duration(float64(pr.Total-w) / p.rate * float64(time.Second))
	case pr.SourceTotal > 0 && pr.SourceRead > 0 && w > 0 && p.rate > 0:
		// Scale the image bytes still to come by the source's progress.
		est := float64(w) * float64(pr.SourceTotal) / float64(pr.SourceRead)
		pr.ETA = time.Duration((est - float64(w)) / p.rate * float64(time.Second))
	}
	if pr.ETA < 0 {
		pr.ETA = 0
	}
	return pr
}

func (p *pipeline) emit() { p.emitProgress(p.snapshot()) }

// emitFinal reports the end, once the ticker is stopped.
func (p *pipeline) emitFinal() {
	if p.opts.Progress == nil {
		return
	}
	if wait := p.interval() - time.Since(p.lastEmit); wait > 0 {
		time.Sleep(wait)
	}
	pr := p.snapshot()
	pr.ETA = 0
	if el := time.Since(p.started).Seconds(); el > 0 {
		pr.Rate = float64(pr.Written) / el // the average over the whole flash
	}
	if pr.Total == 0 {
		pr.Total = pr.Written
	}
	p.emitProgress(pr)
}

func (p *pipeline) emitProgress(pr Progress) {
	p.lastEmit = time.Now()
	p.opts.Progress(pr)
}
