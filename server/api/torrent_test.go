package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// torrentsOf serves a fixed body as the torrent of the listed files.
type torrentsOf map[string]string

func (t torrentsOf) ServeTorrent(w http.ResponseWriter, r *http.Request, file string) bool {
	b, ok := t[file]
	if ok {
		w.Header().Set("Content-Type", "application/x-bittorrent")
		io.WriteString(w, b)
	}
	return ok
}

func TestImageTorrentsAndImageBytes(t *testing.T) {
	dir := t.TempDir()
	img := bytes.Repeat([]byte("flash"), 1000)
	os.WriteFile(filepath.Join(dir, "os.img"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "other.img"), []byte("other"), 0o644)
	for _, swarmOn := range []bool{false, true} {
		reg := prometheus.NewRegistry()
		m := NewMetrics(reg)
		o := Options{ImagesDir: dir, Metrics: m, ImageFiles: []string{"os.img"}}
		if swarmOn {
			o.Torrents = torrentsOf{"os.img": "d8:announce3:urle"}
		}
		s, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		s.Register(mux)
		srv := httptest.NewServer(mux)
		tests := []struct {
			path string
			code int
			body string
		}{
			{"/images/os.img", 200, string(img)},
			{"/images/other.img", 200, "other"},
			{"/images/os.img.torrent", map[bool]int{false: 404, true: 200}[swarmOn], map[bool]string{false: "", true: "d8:announce3:urle"}[swarmOn]},
			{"/images/other.img.torrent", 404, ""},
			{"/images/../os.img.torrent", 404, ""}, // cleaned by the mux to /os.img.torrent: no route
			{"/images/.hidden.torrent", 400, ""},
		}
		for _, tt := range tests {
			res, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.code || (tt.body != "" && string(b) != tt.body) {
				t.Errorf("swarm %v: GET %s: %d %q, want %d %q", swarmOn, tt.path, res.StatusCode, trunc(b), tt.code, tt.body)
			}
		}
		srv.Close()
		s.Close()
		// Only the configured image is counted by file; its torrent is not image bytes.
		if got := testutil.ToFloat64(m.imageBytes.WithLabelValues("os.img")); got != float64(len(img)) {
			t.Errorf("swarm %v: os.img HTTP bytes %v, want %d", swarmOn, got, len(img))
		}
		if n := testutil.CollectAndCount(m.imageBytes); n != 1 {
			t.Errorf("swarm %v: %d image series, want 1 (os.img)", swarmOn, n)
		}
		if got := m.ImageHTTPBytes()["os.img"]; got != int64(len(img)) {
			t.Errorf("swarm %v: ImageHTTPBytes %d", swarmOn, got)
		}
	}
}

func trunc(b []byte) string {
	s := string(b)
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return strings.TrimSpace(s)
}
