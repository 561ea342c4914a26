package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// httpSource reads a URL, reconnecting after drops. Only one goroutine reads it.
type httpSource struct {
	ctx  context.Context
	url  string
	opts Options

	body    io.ReadCloser
	cancel  context.CancelFunc // ends the current attempt
	stall   *time.Timer
	stalled atomic.Bool

	off     int64 // bytes delivered so far
	size    int64 // from the first response, -1 when unknown
	etag    string
	lastMod string
	// prefix is the SHA-256 of the delivered bytes, kept to check a restart from zero; nil
	// when the server promised Range support with a validator (it costs a hash pass).
	prefix   hash.Hash
	failures int // consecutive attempts that delivered nothing
	lastErr  error
	started  bool // a first response was accepted
	done     bool

	read    atomic.Int64
	resumes atomic.Int64
}

func openHTTP(ctx context.Context, url string, opts Options) (*httpSource, error) {
	s := &httpSource{ctx: ctx, url: url, opts: opts, size: -1, off: max(opts.Offset, 0)}
	s.read.Store(s.off)
	if err := s.connect(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *httpSource) Size() int64 { return s.size }

func (s *httpSource) Stats() Stats {
	return Stats{Read: s.read.Load(), Resumes: int(s.resumes.Load())}
}

func (s *httpSource) Close() error {
	s.dropBody()
	return nil
}

func (s *httpSource) dropBody() {
	if s.stall != nil {
		s.stall.Stop()
	}
	if s.cancel != nil {
		s.cancel()
		s.cancel = nil
	}
	if s.body != nil {
		s.body.Close()
		s.body = nil
	}
}

func (s *httpSource) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	for {
		if s.body == nil {
			if err := s.connect(); err != nil {
				return 0, err
			}
		}
		n, err := s.body.Read(p)
		if n > 0 {
			s.stall.Reset(s.opts.StallTimeout)
			if s.prefix != nil {
				s.prefix.Write(p[:n])
			}
			s.off += int64(n)
			s.read.Store(s.off)
			s.failures = 0
			if s.size >= 0 && s.off > s.size {
				return n, fmt.Errorf("source %s sent more than its %d bytes", s.url, s.size)
			}
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && (s.size < 0 || s.off == s.size):
			s.done = true
			s.dropBody()
			return n, io.EOF
		}
		// A drop, a stall or a premature end: reconnect on the next call.
		if s.ctx.Err() != nil {
			return n, s.ctx.Err()
		}
		s.lastErr = err
		if err == io.EOF {
			s.lastErr = io.ErrUnexpectedEOF
		}
		if s.stalled.Load() {
			s.lastErr = fmt.Errorf("no data for %v", s.opts.StallTimeout)
		}
		s.opts.Logger.Warn("image download interrupted", "url", s.url, "at", s.off, "size", s.size, "err", s.lastErr)
		s.dropBody()
		if n > 0 {
			return n, nil
		}
	}
}

// permanentError ends retrying at once.
type permanentError struct{ error }

// connect makes attempts until one yields a body positioned at s.off.
func (s *httpSource) connect() error {
	for attempt := 0; ; attempt++ {
		if s.started || attempt > 0 {
			if s.failures >= s.opts.Retries {
				return s.giveUp()
			}
			s.failures++
			wait := s.opts.Backoff << min(s.failures-1, 4)
			select {
			case <-time.After(wait):
			case <-s.ctx.Done():
				return s.ctx.Err()
			}
		}
		err := s.attempt(!s.started)
		if err == nil {
			if s.started {
				s.resumes.Add(1)
			}
			s.started = true
			return nil
		}
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.error
		}
		s.lastErr = err
		if s.stalled.Load() {
			s.lastErr = fmt.Errorf("no data for %v", s.opts.StallTimeout)
		}
		s.opts.Logger.Warn("image request failed", "url", s.url, "at", s.off, "err", s.lastErr)
	}
}

func (s *httpSource) giveUp() error {
	if !s.started {
		return fmt.Errorf("source %s: %d retries failed, last: %v", s.url, s.opts.Retries, s.lastErr)
	}
	total := "unknown"
	if s.size >= 0 {
		total = strconv.FormatInt(s.size, 10)
	}
	return fmt.Errorf("source ended after %d of %s bytes: %d retries failed, last: %v", s.off, total, s.opts.Retries, s.lastErr)
}

func (s *httpSource) attempt(first bool) error {
	ctx, cancel := context.WithCancel(s.ctx)
	s.stalled.Store(false)
	s.stall = time.AfterFunc(s.opts.StallTimeout, func() {
		s.stalled.Store(true)
		cancel()
	})
	fail := func(err error) error {
		s.stall.Stop()
		cancel()
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return fail(permanentError{fmt.Errorf("source %s: %w", s.url, err)})
	}
	// Transparent gzip would make byte offsets meaningless.
	req.Header.Set("Accept-Encoding", "identity")
	// Resume with Range only when a validator lets the server tell us the file changed;
	// without one, ask for the whole file and compare the prefix instead.
	if s.off > 0 {
		validator := s.lastMod
		if s.etag != "" && !strings.HasPrefix(s.etag, "W/") {
			validator = s.etag
		}
		switch {
		case first:
			// Continuing a download that another source started: nothing to validate yet.
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", s.off))
		case validator != "":
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", s.off))
			req.Header.Set("If-Range", validator)
		}
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return fail(err)
	}
	if err := s.accept(resp, first); err != nil {
		resp.Body.Close()
		return fail(err)
	}
	s.body, s.cancel = resp.Body, cancel
	return nil
}

// accept checks that resp continues the stream at s.off, consuming a re-sent prefix if the
// server restarted from zero.
func (s *httpSource) accept(resp *http.Response, first bool) error {
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	switch {
	case resp.StatusCode == http.StatusOK:
		if first {
			s.size, s.etag, s.lastMod = resp.ContentLength, etag, lastMod
			strong := etag != "" && !strings.HasPrefix(etag, "W/")
			if s.off > 0 {
				// Range ignored: read past what the other source delivered. Those bytes
				// cannot be compared (the image's SHA-256 still decides), and without Range
				// support a later resume cannot be checked either.
				if n, err := io.CopyN(io.Discard, resp.Body, s.off); err != nil {
					return fmt.Errorf("skipping to byte %d: got %d: %w", s.off, n, err)
				}
				return nil
			}
			if resp.Header.Get("Accept-Ranges") != "bytes" || !strong && lastMod == "" {
				s.prefix = sha256.New()
			}
			return nil
		}
		if err := s.sameRepresentation(etag, lastMod, resp.ContentLength); err != nil {
			return err
		}
		if s.off == 0 {
			return nil
		}
		// The server sent the whole file again (no Range support, or it ignored If-Range):
		// re-read the prefix and only continue when it is byte for byte what we delivered.
		if s.prefix == nil {
			return permanentError{fmt.Errorf("source %s: server ignored the Range request it advertised; cannot resume at byte %d", s.url, s.off)}
		}
		return s.skipPrefix(resp.Body)
	case resp.StatusCode == http.StatusPartialContent && (!first || s.off > 0):
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return permanentError{fmt.Errorf("source %s: %w", s.url, err)}
		}
		if start != s.off {
			return permanentError{fmt.Errorf("source %s: asked for byte %d, server sent from %d", s.url, s.off, start)}
		}
		if first {
			s.size, s.etag, s.lastMod = total, etag, lastMod
			return nil
		}
		if s.size >= 0 && total >= 0 && total != s.size {
			return permanentError{fmt.Errorf("source changed during download: size %d, was %d", total, s.size)}
		}
		return s.sameRepresentation(etag, lastMod, -1)
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode >= 500:
		return fmt.Errorf("source %s: HTTP %s", s.url, resp.Status)
	}
	return permanentError{fmt.Errorf("source %s: HTTP %s", s.url, resp.Status)}
}

func (s *httpSource) sameRepresentation(etag, lastMod string, length int64) error {
	if s.etag != "" && etag != "" && etag != s.etag {
		return permanentError{fmt.Errorf("source changed during download: ETag %s, was %s", etag, s.etag)}
	}
	if s.lastMod != "" && lastMod != "" && lastMod != s.lastMod {
		return permanentError{fmt.Errorf("source changed during download: Last-Modified %s, was %s", lastMod, s.lastMod)}
	}
	if length >= 0 && s.size >= 0 && length != s.size {
		return permanentError{fmt.Errorf("source changed during download: size %d, was %d", length, s.size)}
	}
	return nil
}

func (s *httpSource) skipPrefix(body io.Reader) error {
	want := s.prefix.Sum(nil)
	h := sha256.New()
	n, err := io.CopyN(h, body, s.off)
	if err != nil {
		// The re-read itself dropped: an ordinary failed attempt.
		return fmt.Errorf("re-reading the first %d bytes: got %d: %w", s.off, n, err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return permanentError{fmt.Errorf("source changed during download: first %d bytes differ", s.off)}
	}
	// Keep the prefix hash consistent with s.off (h has the same state as s.prefix).
	if m, ok := h.(encoding.BinaryMarshaler); ok {
		if st, err := m.MarshalBinary(); err == nil {
			if u, ok := s.prefix.(encoding.BinaryUnmarshaler); ok {
				_ = u.UnmarshalBinary(st)
			}
		}
	}
	return nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*", returned as -1).
func parseContentRange(v string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	total = -1
	if tot != "*" {
		total, err = strconv.ParseInt(tot, 10, 64)
		if err != nil || total <= end {
			return 0, 0, fmt.Errorf("bad Content-Range %q", v)
		}
	}
	return start, total, nil
}
