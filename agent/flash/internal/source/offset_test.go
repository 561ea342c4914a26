package source

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOffset: a source opened at an offset (the swarm stalled there) delivers the rest, from
// a server with Range, from one that ignores it, and from a file; Stats counts from byte 0.
func TestOffset(t *testing.T) {
	data := randBytes(3<<20, 41)
	const off = 1<<20 + 123
	mod := time.Unix(1700000000, 0)
	var sent int64
	ranged := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countWriter{ResponseWriter: w}
		http.ServeContent(cw, r, "x", mod, bytes.NewReader(data))
		sent += cw.n
	}))
	defer ranged.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3145728")
		w.Write(data)
	}))
	defer plain.Close()
	file := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, spec string }{{"range", ranged.URL}, {"no range", plain.URL}, {"file", file}} {
		t.Run(tc.name, func(t *testing.T) {
			sent = 0
			s, err := Open(t.Context(), tc.spec, Options{Offset: off, Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := io.ReadAll(s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data[off:]) {
				t.Fatalf("got %d bytes, not the image from byte %d", len(got), off)
			}
			if s.Stats().Read != int64(len(data)) || s.Size() != int64(len(data)) {
				t.Errorf("stats read %d, size %d; want %d", s.Stats().Read, s.Size(), len(data))
			}
			if tc.name == "range" && sent != int64(len(data)-off) {
				t.Errorf("server sent %d bytes, want only the rest (%d)", sent, len(data)-off)
			}
		})
	}
	if _, err := Open(t.Context(), "-", Options{Offset: 5}); err == nil || !strings.Contains(err.Error(), "standard input") {
		t.Errorf("stdin at an offset: %v", err)
	}
}

type countWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}
