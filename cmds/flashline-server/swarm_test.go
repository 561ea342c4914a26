package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// TestServeSwarm runs the binary with swarm enabled on loopback: a plain anacrolix client,
// web seeds off, downloads the image through the server's tracker and seed and gets the
// right bytes; /metrics shows the seed's upload; an image switched off has no torrent; the
// metainfo cache is written and a restart on it comes up (server/swarm's tests check that it
// does not hash again).
func TestServeSwarm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	addr := freePort(t)
	_, peerPortS, _ := net.SplitHostPort(freePort(t))
	dir, cfg := lineDir(t, addr)
	img := make([]byte, 6<<20+99)
	rand.Read(img)
	os.WriteFile(filepath.Join(dir, "images", "os.img"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "images", "old.img"), []byte("old"), 0o644)
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
data_dir: data
images_dir: images
scenarios_dir: scenarios
http: {enabled: true, listen: %q}
images: [{name: os, file: os.img}, {name: old, file: old.img}]
rules: [{name: all, scenario: box.yaml, image: os}]
swarm: {enabled: true, peer_port: %s, upload_rate: 1Gbit/s, images: {old.img: false}}
`, addr, peerPortS)), 0o644)
	srv := startServer(t, bin, cfg, addr)
	stop := func() { srv.cmd.Process.Signal(syscall.SIGTERM); srv.cmd.Wait() }
	defer stop()
	base := "http://" + addr

	res, err := http.Get(base + "/images/old.img.torrent")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("torrent of an image switched off: %d, want 404", res.StatusCode)
	}
	res, err = http.Get(base + "/images/os.img.torrent")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET torrent: %v %v\n%s", res, err, srv.log)
	}
	mi, err := metainfo.Load(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if mi.Announce != base+"/swarm/announce" || len(mi.UrlList) != 1 || mi.UrlList[0] != base+"/images/os.img" {
		t.Errorf("announce %q url-list %q", mi.Announce, mi.UrlList)
	}

	ccfg := torrent.NewDefaultClientConfig()
	ccfg.NoDHT, ccfg.DisableWebseeds, ccfg.DisableUTP, ccfg.DisableWebtorrent, ccfg.NoDefaultPortForwarding, ccfg.DisableIPv6 = true, true, true, true, true, true
	ccfg.ListenHost = func(string) string { return "127.0.0.1" }
	ccfg.ListenPort = 0
	out := t.TempDir()
	ccfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{ClientBaseDir: out, PieceCompletion: storage.NewMapPieceCompletion()})
	cl, err := torrent.NewClient(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tor, err := cl.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	tor.DownloadAll()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	select {
	case <-tor.Complete().On():
	case <-ctx.Done():
		t.Fatalf("download: %d of %d bytes\n%s", tor.BytesCompleted(), len(img), srv.log)
	}
	got, _ := os.ReadFile(filepath.Join(out, "os.img"))
	if sha256.Sum256(got) != sha256.Sum256(img) {
		t.Fatal("downloaded bytes differ from the image")
	}
	up := metricValue(t, base, `flashline_swarm_seed_upload_bytes_total{image="os.img"}`)
	if up < float64(len(img)) {
		t.Errorf("seed upload metric %v, want at least %d", up, len(img))
	}
	if v := metricValue(t, base, `flashline_image_http_bytes_total{image="os.img"}`); v != 0 {
		t.Errorf("image HTTP bytes %v with web seeds off", v)
	}
	cl.Close()

	stop()
	cache, err := os.ReadFile(filepath.Join(dir, "data", "swarm-metainfo.json"))
	if err != nil || len(cache) == 0 {
		t.Fatalf("no metainfo cache after the first start: %v", err)
	}
	srv = startServerAt(t, bin, cfg, base+"/metrics", http.DefaultClient)
	srv.cmd.Process.Signal(syscall.SIGTERM)
	srv.cmd.Wait()
}

func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s on /metrics", series)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
