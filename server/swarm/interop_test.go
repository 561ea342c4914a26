package swarm

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInteropAria2 is the first half of the interop check: Debian's aria2c, a BitTorrent
// client that is not ours, fetches an image from the line server's tracker and seed over
// loopback. The image's own URL answers 404 here, so aria2's web seed use (BEP 19, which it
// cannot be told to skip) gets nothing and every byte must come from the seed over BitTorrent;
// DHT, local peer discovery and peer exchange are off. It checks the SHA-256 of what aria2
// wrote and that the seed's upload figure grew by at least the image size.
//
// Without aria2c it skips, except under CI=true, where it fails: scripts/setup installs it.
func TestInteropAria2(t *testing.T) {
	aria, err := exec.LookPath("aria2c")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("aria2c not found: scripts/setup installs the aria2 package")
		}
		t.Skip("aria2c not installed (apt-get install aria2, or scripts/setup)")
	}
	dir := t.TempDir()
	img := writeImage(t, dir, "line/os.img.zst", 24<<20+4321)
	s := newSwarm(t, Options{Dir: dir, Images: []string{"line/os.img.zst"}})

	mux := http.NewServeMux()
	s.Register(mux)
	var webseedHits int
	mux.HandleFunc("GET /images/{path...}", func(w http.ResponseWriter, r *http.Request) {
		if f, ok := strings.CutSuffix(r.PathValue("path"), ".torrent"); ok && s.ServeTorrent(w, r, f) {
			return
		}
		webseedHits++
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// The metainfo as a device gets it, saved for aria2c.
	res, err := http.Get(srv.URL + "/images/line/os.img.zst.torrent")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET torrent: %v %v", res, err)
	}
	tf := filepath.Join(t.TempDir(), "os.img.zst.torrent")
	b, _ := readAll(res)
	if err := os.WriteFile(tf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()[0].Uploaded

	out := filepath.Join(t.TempDir(), "out")
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, aria, "--dir="+out, "--seed-time=0", "--enable-dht=false", "--enable-dht6=false",
		"--bt-enable-lpd=false", "--enable-peer-exchange=false", "--listen-port="+strconv.Itoa(port),
		"--file-allocation=none", "--summary-interval=0", "--console-log-level=warn", "--bt-stop-timeout=20",
		"--no-conf=true", "--check-certificate=false", "--log="+filepath.Join(out, "..", "aria2.log"), "--log-level=info", tf)
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(out, "..", "aria2.log"))
		t.Fatalf("aria2c: %v\n%s\nlog:\n%s", err, outb, log)
	}
	got, err := os.ReadFile(filepath.Join(out, "os.img.zst"))
	if err != nil {
		t.Fatalf("aria2c wrote no image: %v\n%s", err, outb)
	}
	if sha256.Sum256(got) != sha256.Sum256(img) {
		t.Fatalf("aria2c's image differs from the server's (%d vs %d bytes)", len(got), len(img))
	}
	up := s.Stats()[0].Uploaded - before
	if up < int64(len(img)) {
		t.Errorf("the seed uploaded %d bytes, want at least the image's %d", up, len(img))
	}
	t.Logf("aria2c fetched %d bytes from the seed in %s (seed upload %d bytes, web seed requests refused %d)", len(img), took.Round(time.Millisecond), up, webseedHits)
}

func readAll(res *http.Response) ([]byte, error) {
	defer res.Body.Close()
	return io.ReadAll(res.Body)
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
