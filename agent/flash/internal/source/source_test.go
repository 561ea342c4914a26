package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// flakyServer serves one image and misbehaves as told. Each request's behaviour is chosen by
// plan(requestNumber), numbered from 0.
type flakyServer struct {
	t    *testing.T
	mu   sync.Mutex
	reqs []*http.Request
	plan func(n int) behaviour
}

type behaviour struct {
	data       []byte
	etag       string // "" omits ETag
	lastMod    time.Time
	noRange    bool // ignore Range, always 200 with the whole body
	dropAfter  int  // abort the connection after this many body bytes (0: never)
	stallAfter int  // stop sending after this many body bytes until the client gives up
	status     int  // answer with this status and no body
	badRange   bool // answer a Range request with a wrong Content-Range
	absolute   bool // dropAfter/stallAfter count from the image's start, not the response's
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	b := s.plan(n)
	if b.status != 0 {
		w.WriteHeader(b.status)
		return
	}
	if b.badRange && r.Header.Get("Range") != "" {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(b.data)-1, len(b.data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(b.data)
		return
	}
	var out io.Writer = w
	if b.dropAfter > 0 || b.stallAfter > 0 {
		cw := &cutWriter{w: w, drop: b.dropAfter, stall: b.stallAfter, ctx: r.Context()}
		var start int
		if b.absolute && !b.noRange {
			fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start)
		}
		cw.sent = start
		out = cw
	}
	rw := &writerOverride{ResponseWriter: w, out: out}
	if b.etag != "" {
		w.Header().Set("ETag", b.etag)
	}
	if b.noRange {
		r.Header.Del("Range")
		w.Header().Set("Content-Length", fmt.Sprint(len(b.data)))
		if !b.lastMod.IsZero() {
			w.Header().Set("Last-Modified", b.lastMod.UTC().Format(http.TimeFormat))
		}
		w.WriteHeader(http.StatusOK)
		out.Write(b.data)
		return
	}
	http.ServeContent(rw, r, "image", b.lastMod, bytes.NewReader(b.data))
}

type writerOverride struct {
	http.ResponseWriter
	out io.Writer
}

func (w *writerOverride) Write(p []byte) (int, error) { return w.out.Write(p) }

// cutWriter aborts or stalls the response after a number of bytes.
type cutWriter struct {
	w           http.ResponseWriter
	drop, stall int
	sent        int
	ctx         context.Context
}

func (c *cutWriter) Write(p []byte) (int, error) {
	limit := max(c.drop, c.stall)
	if c.sent+len(p) > limit {
		k := max(0, limit-c.sent)
		c.w.Write(p[:k])
		c.w.(http.Flusher).Flush()
		c.sent += k
		if c.stall > 0 {
			<-c.ctx.Done()
			return k, c.ctx.Err()
		}
		panic(http.ErrAbortHandler) // the server drops the connection mid-body
	}
	c.sent += len(p)
	return c.w.Write(p)
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func serve(t *testing.T, plan func(n int) behaviour) (*flakyServer, string) {
	s := &flakyServer{t: t, plan: plan}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL + "/image.raw"
}

var fast = Options{Retries: 4, Backoff: time.Millisecond, StallTimeout: 2 * time.Second}

func readAll(t *testing.T, url string, o Options) ([]byte, Source, error) {
	t.Helper()
	src, err := Open(context.Background(), url, o)
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	got, err := io.ReadAll(src)
	return got, src, err
}

func TestHTTPClean(t *testing.T) {
	data := randBytes(1<<20, 1)
	_, url := serve(t, func(int) behaviour { return behaviour{data: data, etag: `"a"`} })
	got, src, err := readAll(t, url, fast)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("err %v, %d bytes", err, len(got))
	}
	if src.Size() != int64(len(data)) || src.Stats().Read != int64(len(data)) || src.Stats().Resumes != 0 {
		t.Errorf("size %d stats %+v", src.Size(), src.Stats())
	}
}

// Drops at random offsets, with and without validators: the stream must come out whole,
// resumed by Range requests that start exactly where the last one stopped.
func TestHTTPDropsResume(t *testing.T) {
	data := randBytes(3<<20, 2)
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		etag    string
		lastMod time.Time
	}{{"etag", `"v1"`, time.Time{}}, {"last-modified", "", mod}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 3))
			s, url := serve(t, func(n int) behaviour {
				b := behaviour{data: data, etag: tc.etag, lastMod: tc.lastMod}
				if n < 6 {
					b.dropAfter = 1 + r.IntN(600<<10)
				}
				return b
			})
			got, src, err := readAll(t, url, fast)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("resumed stream differs from the image")
			}
			if src.Stats().Resumes != 6 {
				t.Errorf("resumes %d, want 6", src.Stats().Resumes)
			}
			for i, req := range s.reqs[1:] {
				if req.Header.Get("Range") == "" || req.Header.Get("If-Range") == "" {
					t.Errorf("request %d: Range %q If-Range %q", i+1, req.Header.Get("Range"), req.Header.Get("If-Range"))
				}
			}
		})
	}
}

func TestHTTPStallResumes(t *testing.T) {
	data := randBytes(1<<20, 4)
	_, url := serve(t, func(n int) behaviour {
		b := behaviour{data: data, etag: `"s"`}
		if n == 0 {
			b.stallAfter = 300 << 10
		}
		return b
	})
	o := fast
	o.StallTimeout = 200 * time.Millisecond
	start := time.Now()
	got, src, err := readAll(t, url, o)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("err %v, %d bytes", err, len(got))
	}
	if src.Stats().Resumes != 1 {
		t.Errorf("resumes %d", src.Stats().Resumes)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("stall not detected in time")
	}
}

func TestHTTPStallGivesUp(t *testing.T) {
	data := randBytes(1<<20, 5)
	_, url := serve(t, func(n int) behaviour {
		return behaviour{data: data, etag: `"s"`, stallAfter: 100 << 10, absolute: true}
	})
	o := fast
	o.StallTimeout, o.Retries = 100*time.Millisecond, 2
	_, _, err := readAll(t, url, o)
	if err == nil || !strings.Contains(err.Error(), "source ended after 102400 of 1048576 bytes") ||
		!strings.Contains(err.Error(), "no data for") {
		t.Fatalf("err %v", err)
	}
}

// The file changes between requests: the resume must fail, never splice.
func TestHTTPChangedFileNotSpliced(t *testing.T) {
	v1, v2 := randBytes(1<<20, 6), randBytes(1<<20, 7)
	for _, tc := range []struct {
		name string
		b2   behaviour
	}{
		{"etag", behaviour{data: v2, etag: `"v2"`}},
		{"last-modified", behaviour{data: v2, lastMod: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}},
		{"no validators, no range", behaviour{data: v2, noRange: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, url := serve(t, func(n int) behaviour {
				if n == 0 {
					b := tc.b2
					b.data = v1
					b.etag = map[string]string{"etag": `"v1"`}[tc.name]
					if !b.lastMod.IsZero() {
						b.lastMod = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
					}
					b.dropAfter = 500 << 10
					return b
				}
				return tc.b2
			})
			got, _, err := readAll(t, url, fast)
			if err == nil || !strings.Contains(err.Error(), "source changed during download") {
				t.Fatalf("err %v after %d bytes", err, len(got))
			}
		})
	}
}

// A server without Range support: restart from zero, check the prefix, carry on.
func TestHTTPNoRangeRestartsFromZero(t *testing.T) {
	data := randBytes(2<<20, 8)
	s, url := serve(t, func(n int) behaviour {
		b := behaviour{data: data, noRange: true}
		if n < 2 {
			b.dropAfter = (n + 1) * 700 << 10
		}
		return b
	})
	got, src, err := readAll(t, url, fast)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("err %v, %d bytes", err, len(got))
	}
	if src.Stats().Resumes != 2 || len(s.reqs) != 3 {
		t.Errorf("resumes %d requests %d", src.Stats().Resumes, len(s.reqs))
	}
}

// A body that always ends early (a lying Content-Length, a proxy cutting it) must fail
// with the byte counts, never end cleanly.
func TestHTTPTruncatedFails(t *testing.T) {
	data := randBytes(1<<20, 9)
	s, url := serve(t, func(n int) behaviour {
		return behaviour{data: data, etag: `"t"`, dropAfter: 1<<20 - 10, absolute: true}
	})
	o := fast
	o.Retries = 3
	got, _, err := readAll(t, url, o)
	if err == nil || !strings.Contains(err.Error(), "source ended after 1048566 of 1048576 bytes") {
		t.Fatalf("err %v", err)
	}
	if len(got) != 1<<20-10 || len(s.reqs) != 1+3 {
		t.Errorf("got %d bytes in %d requests", len(got), len(s.reqs))
	}
}

func TestHTTPStatus(t *testing.T) {
	data := randBytes(1000, 10)
	s, url := serve(t, func(n int) behaviour { return behaviour{status: http.StatusNotFound} })
	if _, _, err := readAll(t, url, fast); err == nil || !strings.Contains(err.Error(), "404") || len(s.reqs) != 1 {
		t.Errorf("404: err %v after %d requests", err, len(s.reqs))
	}
	s, url = serve(t, func(n int) behaviour {
		if n < 2 {
			return behaviour{status: http.StatusServiceUnavailable}
		}
		return behaviour{data: data}
	})
	if got, _, err := readAll(t, url, fast); err != nil || !bytes.Equal(got, data) || len(s.reqs) != 3 {
		t.Errorf("503 then 200: err %v after %d requests", err, len(s.reqs))
	}
	s, url = serve(t, func(n int) behaviour { return behaviour{status: http.StatusBadGateway} })
	o := fast
	o.Retries = 2
	if _, _, err := readAll(t, url, o); err == nil || !strings.Contains(err.Error(), "2 retries failed") || len(s.reqs) != 3 {
		t.Errorf("502 forever: err %v after %d requests", err, len(s.reqs))
	}
}

func TestHTTPBadContentRange(t *testing.T) {
	data := randBytes(1<<20, 11)
	_, url := serve(t, func(n int) behaviour {
		b := behaviour{data: data, etag: `"r"`, badRange: true}
		if n == 0 {
			b.dropAfter = 100 << 10
		}
		return b
	})
	if _, _, err := readAll(t, url, fast); err == nil || !strings.Contains(err.Error(), "asked for byte 102400") {
		t.Fatalf("err %v", err)
	}
}

func TestHTTPCancel(t *testing.T) {
	data := randBytes(1<<20, 12)
	_, url := serve(t, func(n int) behaviour { return behaviour{data: data, stallAfter: 10} })
	ctx, cancel := context.WithCancel(context.Background())
	src, err := Open(ctx, url, Options{StallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	go func() { time.Sleep(100 * time.Millisecond); done.Store(true); cancel() }()
	_, err = io.ReadAll(src)
	if err == nil || !done.Load() {
		t.Fatalf("err %v", err)
	}
}

func TestFileSource(t *testing.T) {
	src, err := Open(context.Background(), "source_test.go", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b, err := io.ReadAll(src)
	if err != nil || int64(len(b)) != src.Size() || src.Stats().Read != src.Size() {
		t.Fatalf("err %v len %d size %d", err, len(b), src.Size())
	}
	if _, err := Open(context.Background(), "does-not-exist", Options{}); err == nil {
		t.Error("missing file opened")
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 0-99/100", 0, 100, true},
		{"bytes 5-9/*", 5, -1, true},
		{"bytes 5-4/100", 0, 0, false},
		{"bytes 5-100/100", 0, 0, false},
		{"bytes -5-9/100", 0, 0, false},
		{"items 0-1/2", 0, 0, false},
		{"bytes 0-1", 0, 0, false},
		{"", 0, 0, false},
	} {
		s, tot, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || tc.ok && (s != tc.start || tot != tc.total) {
			t.Errorf("%q: %d %d %v", tc.in, s, tot, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-99/100")
	f.Add("bytes 5-9/*")
	f.Add("bytes 9223372036854775806-9223372036854775807/*")
	f.Fuzz(func(t *testing.T, v string) {
		start, total, err := parseContentRange(v)
		if err != nil {
			return
		}
		if start < 0 || total < -1 || total >= 0 && total <= start {
			t.Fatalf("%q: start %d total %d", v, start, total)
		}
	})
}

// A server that advertises Range support and a validator but then answers a resume with the
// whole file: no prefix hash was kept, so the only safe answer is a clear failure.
func TestHTTPRangePromiseBroken(t *testing.T) {
	data := randBytes(1<<20, 13)
	_, url := serve(t, func(n int) behaviour {
		if n == 0 {
			return behaviour{data: data, etag: `"p"`, dropAfter: 300 << 10}
		}
		return behaviour{data: data, etag: `"p"`, noRange: true}
	})
	if _, _, err := readAll(t, url, fast); err == nil || !strings.Contains(err.Error(), "ignored the Range request") {
		t.Fatalf("err %v", err)
	}
}

// Range support without a validator: a resume by Range could splice a changed file, so the
// source asks for the whole file again and checks the prefix.
func TestHTTPRangeWithoutValidator(t *testing.T) {
	data := randBytes(1<<20, 14)
	s, url := serve(t, func(n int) behaviour {
		b := behaviour{data: data}
		if n == 0 {
			b.dropAfter = 400 << 10
		}
		return b
	})
	got, src, err := readAll(t, url, fast)
	if err != nil || !bytes.Equal(got, data) || src.Stats().Resumes != 1 {
		t.Fatalf("err %v, %d bytes", err, len(got))
	}
	if r := s.reqs[1].Header.Get("Range"); r != "" {
		t.Errorf("resumed with Range %q and no validator", r)
	}
	if s.reqs[0].Header.Get("Range") != "" {
		t.Error("first request had a Range")
	}
}

// FuzzHTTPResume drops connections at fuzzed offsets, with fuzzed server capabilities and a
// file that may change between requests: the source must deliver exactly the image or fail,
// never different bytes.
func FuzzHTTPResume(f *testing.F) {
	f.Add(byte(0), []byte{0x10, 0x00, 0x80, 0x00})
	f.Add(byte(1), []byte{0x01, 0x00, 0x02, 0x00, 0x03, 0x00})
	f.Add(byte(2), []byte{0xff, 0xff})
	f.Add(byte(7), []byte{0x00, 0x40})
	v1, v2 := randBytes(64<<10, 20), randBytes(64<<10, 21)
	copy(v2, v1[:32<<10]) // the change is past the first half
	f.Fuzz(func(t *testing.T, mode byte, drops []byte) {
		if len(drops) > 16 {
			drops = drops[:16]
		}
		_, url := serve(t, func(n int) behaviour {
			b := behaviour{data: v1, noRange: mode&1 != 0, absolute: true}
			if mode&2 != 0 {
				b.etag = `"v1"`
			}
			if mode&4 != 0 && n > 0 {
				b.data = v2 // the file changes after the first request
				if mode&2 != 0 {
					b.etag = `"v2"`
				}
			}
			if 2*n+1 < len(drops) {
				b.dropAfter = 1 + int(drops[2*n])<<8 | int(drops[2*n+1])
			}
			return b
		})
		o := fast
		o.Retries = 20
		got, _, err := readAll(t, url, o)
		if err != nil {
			return
		}
		// Without validators, a change past the delivered prefix yields the new file whole.
		if !bytes.Equal(got, v1) && !(mode&4 != 0 && bytes.Equal(got, v2)) {
			t.Fatalf("delivered %d bytes that are neither version of the file", len(got))
		}
	})
}
