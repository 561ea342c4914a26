// Package flash writes a disk image onto a block device or a file, the core of Flashline.
//
//	res, err := flash.Write(ctx, flash.Options{
//		Source: "http://server/images/os.img.zst", // or a path, or "-" for stdin
//		Target: "/dev/vda",
//		SHA256: "9f86d0...",        // of the decompressed image; optional
//		Size:   8 << 30,            // exact image length; optional
//		Progress: func(p flash.Progress) { ... }, // at most 4 calls a second, one goroutine
//	})
//
// The pipeline is source (HTTP with Range resume, file or stdin) -> format sniffing by magic
// (raw, gzip, zstd, xz) -> decoder -> SHA-256 -> writers, each stage its own goroutine
// passing large aligned buffers, so that download, decoding, hashing and writing overlap and
// memory stays bounded (a fixed set of buffers) whatever the image size.
//
// Power-loss safety: before writing, the target's first MiB (partition tables, boot code) is
// wiped; the image's first MiB is held in memory and written only after the rest is written,
// synced and its hash checked (and read back, with VerifyReadback). A target whose flash
// failed or was interrupted has no partition table, so it cannot boot half an image and
// netboots again; on failure Write wipes the first MiB once more, and on a device the last
// MiB too, where a backup GPT would let firmware recover the table.
//
// Errors are one line, starting with "flash: ", fit for a console and for the server; they
// wrap their causes (errors.Is(err, context.Canceled), fs.ErrNotExist ...).
package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/flash/internal/decompress"
	"github.com/flashline/flashline/agent/flash/internal/source"
	"github.com/flashline/flashline/agent/flash/target"
	"github.com/flashline/flashline/internal/human"
	"github.com/flashline/flashline/protocol/bmap"
)

// HoldBack is how much of the image's start is written last.
const HoldBack = 1 << 20

// Options describe one flash.
type Options struct {
	Source string // http(s) URL, file path, or "-" for standard input
	Target string // block device or regular file (created when missing)
	SHA256 string // hex SHA-256 of the decompressed image; "" skips the comparison
	Size   int64  // exact decompressed length; <= 0 when unknown

	Force             bool // allow removable media
	VerifyReadback    bool // re-read the written image and compare its hash
	GrowLastPartition bool // after the GPT fix-up, extend the last partition to the disk's end
	NoDirect          bool // never use O_DIRECT
	NoZeroSkip        bool // write zero blocks even where the target reads back zeros

	StallTimeout time.Duration // HTTP: no byte for this long counts as a drop (default 30 s)
	Retries      int           // HTTP: consecutive failed reconnects allowed (0: 5, < 0: none)
	RetryBackoff time.Duration // HTTP: first retry delay (default 1 s)
	HTTPClient   *http.Client

	// Progress, when set, receives progress from a single goroutine, at most every
	// ProgressInterval (default 250 ms), plus a final call when Write ends successfully.
	Progress         func(Progress)
	ProgressInterval time.Duration

	// BufferSize and Buffers size the pipeline (defaults 4 MiB x 4, 1 MiB x 4 for xz);
	// BufferSize is rounded up to a multiple of HoldBack.
	BufferSize int
	Buffers    int
	// DecodeThreads bounds the decoder's cores (zstd, xz); 0 means all for xz (as far as
	// Memory allows) and all but one for zstd.
	DecodeThreads int
	// Writers is how many writes may be in flight at once (default 2 on a device, 1 on a
	// file).
	Writers int
	// Memory is the memory budget (resident set) of the flashing process, default 64 MiB.
	// The xz decoder works on several blocks at once only where that fits the budget.
	// agent/membudget holds the garbage collector to it as the sizing assumes (GOGC=50,
	// a soft memory limit); the journey and `flashline-agent flash` both apply it.
	Memory int64

	Logger  *slog.Logger
	Checker *target.Checker // where the target safety checks look; nil for the live system

	// Bmap, when set, is the image's block map (LoadBmap reads one): only its mapped ranges
	// are written, each checked against its SHA-256 as it streams, in place of SHA256 (the
	// bytes between ranges are free space whose content does not matter).
	Bmap *bmap.Map

	// Hold, when set, is called before each buffer is read from the source and may block:
	// the journey holds the download while a step that times the network runs. An error
	// ends the flash.
	Hold func(ctx context.Context) error
	// Commit, when set, is called once the image is written, synced and verified, before
	// the first (and last) MiB is committed, and may block: the flash is committed only
	// when it returns nil; an error fails the flash, which wipes the partition tables.
	Commit func(ctx context.Context) error

	// Swarm, when set, gets the image from a BitTorrent swarm (Source being its web seed
	// and fallback) and, after the flash, seeds it for Swarm.Linger. A metainfo that
	// cannot be loaded or has another infohash means plain HTTP (Result.Warnings says so).
	Swarm *Swarm
}

// Progress is a snapshot of a running flash.
type Progress struct {
	Phase   string        // "write", "sync", "verify", "hold" (waiting for Commit), "finalize", "seed" (lingering in the swarm), "done"
	Written int64         // image bytes handled (written or skipped as zeros)
	Total   int64         // image length, 0 when not known yet
	Rate    float64       // bytes per second, smoothed
	ETA     time.Duration // 0 when unknown
	// SourceRead and SourceTotal count the (possibly compressed) source bytes; they give an
	// ETA when only the source's length is known.
	SourceRead, SourceTotal int64
}

// Result describes a finished flash.
type Result struct {
	Bytes       int64  // image length
	SHA256      string // hex SHA-256 of the image
	Format      string // raw, gzip, zstd, xz
	Duration    time.Duration
	Resumes     int   // HTTP reconnections that continued the stream
	ZeroSkipped int64 // bytes of zero blocks not written because the target reads zeros
	Unmapped    int64 // bytes outside the bmap's ranges, not written (0 without a bmap)
	Direct      bool  // O_DIRECT was used
	GPT         target.GPTResult
	Warnings    []string
	Swarm       SwarmResult // where the bytes came from, when Options.Swarm was set
}

func fail(format string, args ...any) error {
	return fmt.Errorf("flash: "+format, args...)
}

// oneLine makes sure an error from a library stays on one line, keeping its chain for
// errors.Is and errors.As.
func oneLine(err error) error {
	s := err.Error()
	if !strings.ContainsAny(s, "\r\n") {
		return err
	}
	return &oneLineError{msg: human.OneLine(s), err: err}
}

type oneLineError struct {
	msg string
	err error
}

func (e *oneLineError) Error() string { return e.msg }
func (e *oneLineError) Unwrap() error { return e.err }

// Write flashes opts.Source onto opts.Target. See the package documentation.
func Write(ctx context.Context, opts Options) (res Result, err error) {
	start := time.Now()
	defer func() {
		res.Duration = time.Since(start)
		if err != nil {
			err = oneLine(err)
		}
	}()
	// 1. The request: what must hold before a byte is fetched.
	if opts.Source == "" || opts.Target == "" {
		return res, fail("source and target are required")
	}
	var want []byte
	if opts.SHA256 != "" {
		want, err = hex.DecodeString(strings.ToLower(opts.SHA256))
		if err != nil || len(want) != sha256.Size {
			return res, fail("--sha256 must be 64 hex digits")
		}
	}
	// Before the download: a missing disk under /dev is known without fetching a byte.
	checker := opts.Checker
	if checker == nil {
		checker = target.LiveChecker()
	}
	if err := checker.CheckDevPath(opts.Target); err != nil {
		return res, fail("%w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if bm := opts.Bmap; bm != nil {
		// Checked before anything is opened for writing: a map that cannot be this image's
		// fails here.
		if opts.Size > 0 && opts.Size != bm.ImageSize {
			return res, fail("the bmap is for a %d-byte image, --size says %d", bm.ImageSize, opts.Size)
		}
		if want != nil {
			// The range hashes replace it: checking both would hash every byte again.
			res.Warnings = append(res.Warnings, "--sha256 is not checked with a bmap: its range hashes are")
			want = nil
		}
	}
	p := newPipeline(opts, log)

	// 2. The source and its decoder, sized to the memory budget.
	sopts := source.Options{
		Client: opts.HTTPClient, StallTimeout: opts.StallTimeout, Retries: opts.Retries,
		Backoff: opts.RetryBackoff, Logger: log,
	}
	var src source.Source
	var sw *swarmSource
	var lingered time.Duration
	if opts.Swarm != nil {
		var why string
		sw, why, err = openSwarm(ctx, opts, sopts, log)
		if err != nil {
			return res, err
		}
		if sw == nil {
			res.Warnings = append(res.Warnings, "swarm not used: "+why)
			log.Warn("swarm not used, downloading over HTTP", "err", why)
		} else {
			src = sw
			defer func() { res.Swarm = sw.result(); res.Swarm.Lingered = lingered }()
		}
	}
	if src == nil {
		src, err = source.Open(ctx, opts.Source, sopts)
		if err != nil {
			return res, fail("%w", err)
		}
	}
	defer src.Close()
	p.src = src
	dec, err := decompress.NewReader(src, decompress.Options{
		Concurrency: opts.DecodeThreads,
		// Only xz's decoder sizes itself to its budget, so reckon with xz's buffers.
		Memory:   decoderMemory(opts.Memory, p.memory(decompress.Xz)),
		Verified: want != nil || opts.Bmap != nil,
	})
	if err != nil {
		return res, fail("%w", err)
	}
	defer dec.Close()
	res.Format = string(dec.Format)
	p.bufSize = p.bufferSize(dec.Format)

	p.size = -1
	if opts.Size > 0 {
		p.size = opts.Size
	} else if opts.Bmap != nil {
		p.size = opts.Bmap.ImageSize
	} else if dec.Format == decompress.Raw && src.Size() >= 0 {
		p.size = src.Size()
	}
	if opts.Bmap != nil && dec.Format == decompress.Raw && src.Size() >= 0 && src.Size() != opts.Bmap.ImageSize {
		return res, fail("source is %d bytes, its bmap says %d", src.Size(), opts.Bmap.ImageSize)
	}
	if opts.Size > 0 && dec.Format == decompress.Raw && src.Size() >= 0 && src.Size() != opts.Size {
		return res, fail("source is %d bytes, --size says %d", src.Size(), opts.Size)
	}

	// 3. The target, made safe to write: from here on a failure wipes its partition tables.
	tgt, err := target.Open(opts.Target, target.Options{
		Force: opts.Force, NoDirect: opts.NoDirect, ImageSize: p.size, Checker: opts.Checker,
	})
	if err != nil {
		return res, fail("%w", err)
	}
	p.tgt = tgt
	if sw != nil {
		sw.attachSpool(opts.Swarm.Spool, tgt, p.size)
	}
	closed := false
	defer func() {
		if err != nil {
			// Whatever happened, leave no partition table behind: the device netboots again.
			// That includes a backup GPT at the device's end, which firmware would use
			// when the primary is gone (an image as large as the device puts one there).
			if werr := tgt.WipeTables(HoldBack); werr != nil {
				err = fmt.Errorf("%w (and wiping the partition tables failed: %w)", err, werr)
			}
		}
		if !closed {
			tgt.Close()
		}
	}()

	if err := p.prepare(); err != nil {
		return res, err
	}
	p.prog.start(p.size, src)
	defer p.prog.halt()

	// 4. The stream: read -> check -> write, the first MiB held back.
	n, sum, err := p.run(ctx, dec)
	res.ZeroSkipped = p.skipped.Load()
	res.Unmapped = p.unmapped.Load()
	res.Resumes = src.Stats().Resumes
	res.Direct = tgt.Direct()
	if err != nil {
		return res, err
	}
	res.Bytes = n
	if sum != nil {
		res.SHA256 = hex.EncodeToString(sum)
	}
	if n == 0 {
		return res, fail("the image is empty")
	}
	if opts.Size > 0 && n != opts.Size {
		return res, fail("source ended after %d of %d bytes", n, opts.Size)
	}
	if want != nil && !equalBytes(sum, want) {
		return res, fail("sha256 mismatch: got %s want %s", res.SHA256, strings.ToLower(opts.SHA256))
	}

	// 5. Durable and verified, then (once Commit agrees) the held-back MiB committed.
	p.prog.set("sync", -1)
	if err := tgt.Sync(n); err != nil {
		return res, fail("%w", err)
	}
	if opts.VerifyReadback {
		if err := p.verifyReadback(ctx, n, sum); err != nil {
			return res, err
		}
	}
	if opts.Commit != nil {
		p.prog.set("hold", n)
		if err := opts.Commit(ctx); err != nil {
			return res, fail("not committed: %w", err)
		}
	}
	p.prog.set("finalize", n)
	if err := p.commitHead(n, opts.VerifyReadback); err != nil {
		return res, err
	}
	// 6. The partition table fitted to the target, and the kernel told.
	if n < tgt.Size() || opts.GrowLastPartition {
		g, err := tgt.FixGPT(opts.GrowLastPartition)
		if err != nil {
			return res, fail("%w", err)
		}
		res.GPT = g
	}
	if err := tgt.Sync(n); err != nil {
		return res, fail("%w", err)
	}
	closed = true
	if err := tgt.Close(); err != nil {
		return res, fail("close target: %w", err)
	}
	if err := target.RereadPartitions(ctx, opts.Target); err != nil {
		// The image is written and durable; only the kernel's view is stale.
		res.Warnings = append(res.Warnings, err.Error())
		log.Warn("partition table re-read failed", "err", err)
	}
	if sw != nil {
		if sw.fallback.Load() != nil {
			res.Warnings = append(res.Warnings, "swarm: "+sw.fallback.Load().why)
		}
		if d := opts.Swarm.Linger; d > 0 {
			// Verified and committed: serve what the window holds to the devices behind.
			p.prog.set("seed", n)
			t0 := time.Now()
			sw.sw.Linger(ctx, d, 0)
			lingered = time.Since(t0)
		}
	}
	p.prog.finish(n)
	return res, nil
}

// DefaultMemory is the flash's memory budget when Options.Memory is not set.
const DefaultMemory = 64 << 20

// decoderMemory is the share of a process's memory budget left to the decoder's live data:
// the agent's code and the Go runtime take about 16 MiB of resident memory beside the heap,
// the garbage collector a third of the heap (agent/membudget runs the agent at GOGC=50), and the pipeline
// its buffers.
func decoderMemory(budget, buffers int64) int64 {
	if budget <= 0 {
		budget = DefaultMemory
	}
	return max(1, (budget-16<<20)*2/3-buffers)
}

func equalBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := range a {
		d |= a[i] ^ b[i]
	}
	return d == 0
}
