package decompress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Options tune the decoders. The zero value is fine.
type Options struct {
	// Concurrency is how many cores a decoder may use; 0 means all of them for xz and all
	// but one for zstd.
	Concurrency int
	// Memory, when > 0, is how much the decoder may hold; xz decodes blocks in parallel only
	// when a block, its dictionary and its look-ahead fit it once per core.
	Memory int64
	// Verified says the caller checks the whole output against a SHA-256 before using it.
	// zstd then skips its frames' XXH64 checksums, which cost the decoding goroutine about 8%
	// of its time and catch nothing the SHA-256 would not; the frame of a single-frame
	// image ends with the stream anyway, so no error comes later than it would have.
	Verified bool
}

func (o Options) concurrency() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return runtime.GOMAXPROCS(0)
}

// zstdConcurrency leaves one core to the caller. A single zstd frame decodes mostly serially
// and klauspost's extra goroutines only pipeline its stages; on 2 cores, where the flash
// pipeline's SHA-256 takes the other core, one decoder goroutine was about 10% faster and
// used less CPU than two (2 GiB image: 4.19-4.87 s against 4.59-5.36 s, three runs each).
func (o Options) zstdConcurrency() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return max(1, runtime.GOMAXPROCS(0)-1)
}

// Reader yields the decompressed image. Close releases the decoder's goroutines; it does not
// close the underlying stream.
type Reader struct {
	io.Reader
	Format Format
	close  func()
}

// Close stops the decoder's background work.
func (r *Reader) Close() error {
	if r.close != nil {
		r.close()
	}
	return nil
}

// zstdMaxWindow bounds the decoder's history; zstd levels up to 19 use at most 8 MiB windows,
// and --long images up to 128 MiB would blow the agent's memory budget, so they are refused
// with a clear error rather than allowed to eat the ramdisk.
const zstdMaxWindow = 32 << 20

// NewReader sniffs the format of r and returns a reader of the decompressed bytes. Every
// decoder treats a stream that stops early as io.ErrUnexpectedEOF, never as a clean end.
func NewReader(r io.Reader, opts Options) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(SniffLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read image header: %w", err)
	}
	format := Sniff(head)
	switch format {
	case Gzip:
		// pgzip inflates in its own goroutine with read-ahead of decoded blocks, so the
		// CRC, the network and the caller's hashing overlap with inflation.
		zr, err := pgzip.NewReaderN(br, 1<<20, 4)
		if err != nil {
			return nil, fmt.Errorf("gzip header: %w", eofIsUnexpected(err))
		}
		return &Reader{Reader: &errMapper{r: zr, format: Gzip}, Format: Gzip, close: func() { zr.Close() }}, nil
	case Zstd:
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(opts.zstdConcurrency()),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderLowmem(true),
			zstd.IgnoreChecksum(opts.Verified))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return &Reader{Reader: &errMapper{r: zr, format: Zstd}, Format: Zstd, close: zr.Close}, nil
	case Xz:
		xr := newXZReader(br, opts.concurrency(), opts.Memory)
		return &Reader{Reader: &errMapper{r: xr, format: Xz}, Format: Xz, close: xr.Close}, nil
	}
	return &Reader{Reader: br, Format: Raw}, nil
}

// errMapper names the format in decoder errors and makes sure a truncated stream can never
// pass for a complete one: some decoders report a cut inside a frame as plain io.EOF.
type errMapper struct {
	r      io.Reader
	format Format
	err    error
}

func (m *errMapper) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.r.Read(p)
	if err != nil && err != io.EOF {
		err = eofIsUnexpected(err)
		if strings.HasPrefix(err.Error(), string(m.format)+":") {
			m.err = err
		} else {
			m.err = fmt.Errorf("%s: %w", m.format, err)
		}
		return n, m.err
	}
	return n, err
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
