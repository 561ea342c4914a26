// Package source opens the byte stream of an image: an http(s) URL, a local file, or "-" for
// standard input. An HTTP source survives dropped and stalled connections by resuming with a
// Range request from the last byte it delivered, and it never splices two different files:
// a resume must name the same representation (If-Range with the first response's ETag or
// Last-Modified, Content-Range checked), and a server without Range support or validators
// that answers with the whole file again is re-read from byte zero and its prefix compared,
// by SHA-256, with what was already delivered. A source that ends before its announced length is an error, never a clean EOF.
package source

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Source is an image stream.
type Source interface {
	io.ReadCloser
	// Size is the stream's length in bytes, -1 when unknown.
	Size() int64
	// Stats may be called from any goroutine while the source is being read.
	Stats() Stats
}

// Stats are a source's counters.
type Stats struct {
	Read    int64 // bytes delivered to the reader
	Resumes int   // reconnections that continued the stream
}

// Options tune an HTTP source; files and stdin ignore them.
type Options struct {
	Client *http.Client // nil: a client with no overall timeout (stalls are detected instead)
	// StallTimeout is how long a connection may deliver no byte before it is treated as
	// dropped. 0 means 30 s.
	StallTimeout time.Duration
	// Retries bounds consecutive failed attempts that delivered nothing. 0 means 5; a
	// negative value disables retrying.
	Retries int
	// Backoff is the wait before the first retry, doubled after each failure up to 16x.
	// 0 means 1 s.
	Backoff time.Duration
	Logger  *slog.Logger
	// Offset is where the stream starts: a swarm download that stalled goes on over HTTP
	// from there (a Range request; a server that ignores it is read past the offset), or a
	// file from there. Stats.Read counts from the file's start.
	Offset int64
}

func (o Options) withDefaults() Options {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 5
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Open opens spec: a URL starting with http:// or https://, "-" for standard input, or a
// file path. For HTTP the first request is made before Open returns, so a missing image
// fails here.
func Open(ctx context.Context, spec string, opts Options) (Source, error) {
	switch {
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		return openHTTP(ctx, spec, opts.withDefaults())
	case spec == "-":
		if opts.Offset > 0 {
			return nil, fmt.Errorf("open source: standard input cannot start at byte %d", opts.Offset)
		}
		return newFileSource(os.Stdin, false), nil
	}
	f, err := os.Open(spec)
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	s := newFileSource(f, true)
	if opts.Offset > 0 {
		if _, err := f.Seek(opts.Offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("open source: %w", err)
		}
		s.total = opts.Offset
		s.read.Store(s.total)
	}
	return s, nil
}

type fileSource struct {
	f     *os.File
	own   bool
	size  int64
	read  atomic.Int64
	total int64
}

func newFileSource(f *os.File, own bool) *fileSource {
	s := &fileSource{f: f, own: own, size: -1}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		s.size = fi.Size()
	}
	return s
}

func (s *fileSource) Read(p []byte) (int, error) {
	n, err := s.f.Read(p)
	s.total += int64(n)
	s.read.Store(s.total)
	if err == io.EOF && s.size >= 0 && s.total < s.size {
		// A file that shrank under us is a short source, not a complete one.
		return n, fmt.Errorf("source ended after %d of %d bytes: %w", s.total, s.size, io.ErrUnexpectedEOF)
	}
	return n, err
}

func (s *fileSource) Close() error {
	if s.own {
		return s.f.Close()
	}
	return nil
}

func (s *fileSource) Size() int64  { return s.size }
func (s *fileSource) Stats() Stats { return Stats{Read: s.read.Load()} }
