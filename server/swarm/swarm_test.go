package swarm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

func TestPieceLength(t *testing.T) {
	for _, tt := range []struct {
		size, want int64
	}{
		{1, 1 << 20}, {100 << 20, 1 << 20}, {1 << 30, 1 << 20}, {1<<30 + 1, 2 << 20}, {4 << 30, 2 << 20}, {5 << 30, 4 << 20},
	} {
		if got := PieceLength(tt.size); got != tt.want {
			t.Errorf("PieceLength(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
}

// writeImage puts size random bytes at dir/name and returns them.
func writeImage(t testing.TB, dir, name string, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func newSwarm(t testing.TB, o Options) *Swarm {
	t.Helper()
	o.ListenHost = "127.0.0.1"
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestMetainfoCache(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	writeImage(t, dir, "a.img", 3<<20+5)
	writeImage(t, dir, "sub/b.img.zst", 1<<20)
	cache := filepath.Join(data, "swarm-metainfo.json")
	o := Options{Dir: dir, Images: []string{"a.img", "sub/b.img.zst"}, CacheFile: cache}

	steps := []struct {
		name   string
		before func()
		hashed int
	}{
		{"first start hashes every image", nil, 2},
		{"second start takes them from the cache", nil, 0},
		{"a touched file is hashed again", func() {
			later := time.Now().Add(time.Hour)
			os.Chtimes(filepath.Join(dir, "a.img"), later, later)
		}, 1},
		{"a broken cache is recomputed", func() { os.WriteFile(cache, []byte("{not json"), 0o644) }, 2},
	}
	var hashes []string
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		s := newSwarm(t, o)
		if got := s.Hashed(); got != st.hashed {
			t.Errorf("%s: hashed %d images, want %d", st.name, got, st.hashed)
		}
		off, _ := s.Offer("a.img")
		hashes = append(hashes, off.InfoHash)
		s.Close()
	}
	for _, h := range hashes[1:] {
		if h != hashes[0] {
			t.Errorf("infohash changed between starts: %v", hashes)
		}
	}
}

// serve runs the swarm's routes on a loopback HTTP server as flashline-server wires them:
// the images under /images/ (the torrent for <file>.torrent), the tracker at /swarm/announce.
func serve(t testing.TB, s *Swarm, dir string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	s.Register(mux)
	mux.HandleFunc("GET /images/{path...}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("path")
		if f, ok := strings.CutSuffix(name, ".torrent"); ok {
			if !s.ServeTorrent(w, r, f) {
				http.NotFound(w, r)
			}
			return
		}
		http.ServeFile(w, r, filepath.Join(dir, filepath.FromSlash(name)))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func fetchTorrent(t testing.TB, base, file string) (*metainfo.MetaInfo, int) {
	t.Helper()
	res, err := http.Get(base + "/images/" + file + ".torrent")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, res.StatusCode
	}
	mi, err := metainfo.Load(res.Body)
	if err != nil {
		t.Fatalf("decode %s.torrent: %v", file, err)
	}
	return mi, res.StatusCode
}

func TestTorrentContent(t *testing.T) {
	dir := t.TempDir()
	img := writeImage(t, dir, "lines/os v1.img.zst", 2<<20+12345)
	writeImage(t, dir, "off.img", 1000)
	s := newSwarm(t, Options{Dir: dir, Images: []string{"lines/os v1.img.zst"}, LingerSeconds: 60})
	srv := serve(t, s, dir)

	mi, code := fetchTorrent(t, srv.URL, "lines/os%20v1.img.zst")
	if code != http.StatusOK {
		t.Fatalf("GET torrent: %d", code)
	}
	if want := srv.URL + AnnouncePath; mi.Announce != want {
		t.Errorf("announce %q, want %q", mi.Announce, want)
	}
	if want := srv.URL + "/images/lines/os%20v1.img.zst"; len(mi.UrlList) != 1 || mi.UrlList[0] != want {
		t.Errorf("url-list %q, want [%q]", mi.UrlList, want)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "os v1.img.zst" || info.Length != int64(len(img)) || info.PieceLength != 1<<20 {
		t.Errorf("info name %q length %d piece length %d", info.Name, info.Length, info.PieceLength)
	}
	// The pieces, hashed here independently of the library.
	var want []byte
	for off := 0; off < len(img); off += int(info.PieceLength) {
		sum := sha1.Sum(img[off:min(off+int(info.PieceLength), len(img))])
		want = append(want, sum[:]...)
	}
	if !bytes.Equal(info.Pieces, want) {
		t.Errorf("pieces differ from the file's SHA-1s (%d vs %d bytes)", len(info.Pieces), len(want))
	}
	off, ok := s.Offer("lines/os v1.img.zst")
	if !ok || off.InfoHash != mi.HashInfoBytes().HexString() || off.Torrent != "/images/lines/os%20v1.img.zst.torrent" || off.LingerSeconds != 60 {
		t.Errorf("offer %+v (ok %v), metainfo hashes to %s", off, ok, mi.HashInfoBytes().HexString())
	}
	for _, f := range []string{"off.img", "missing.img"} {
		if _, code := fetchTorrent(t, srv.URL, f); code != http.StatusNotFound {
			t.Errorf("%s.torrent: %d, want 404", f, code)
		}
		if _, ok := s.Offer(f); ok {
			t.Errorf("%s offered", f)
		}
	}
}

func TestPublicURLAndImagesURL(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir, "os.img", 1000)
	for _, tt := range []struct {
		public, images, announce, webseed string
	}{
		{"http://10.0.2.2:8080/", "", "http://10.0.2.2:8080/swarm/announce", "http://10.0.2.2:8080/images/os.img"},
		{"http://10.0.2.2:8080", "http://nginx.plant/fl/", "http://10.0.2.2:8080/swarm/announce", "http://nginx.plant/fl/os.img"},
		{"http://10.0.2.2:8080", "/mirror", "http://10.0.2.2:8080/swarm/announce", "http://10.0.2.2:8080/mirror/os.img"},
	} {
		s := newSwarm(t, Options{Dir: dir, Images: []string{"os.img"}, PublicURL: tt.public, ImagesURL: tt.images})
		srv := serve(t, s, dir)
		mi, _ := fetchTorrent(t, srv.URL, "os.img")
		if mi == nil || mi.Announce != tt.announce || len(mi.UrlList) != 1 || mi.UrlList[0] != tt.webseed {
			t.Errorf("public %q images %q: got %+v", tt.public, tt.images, mi)
		}
	}
}

func announce(t testing.TB, base string, q url.Values) map[string]any {
	t.Helper()
	res, err := http.Get(base + AnnouncePath + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := bencode.Unmarshal(b, &m); err != nil {
		t.Fatalf("announce answer %q (%d) is not bencode: %v", b, res.StatusCode, err)
	}
	return m
}

func TestAnnounce(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir, "os.img", 1000)
	s := newSwarm(t, Options{Dir: dir, Images: []string{"os.img"}})
	srv := serve(t, s, dir)
	off, _ := s.Offer("os.img")
	ih, _ := hex.DecodeString(off.InfoHash)
	q := func(peer, port, left, event string) url.Values {
		return url.Values{"info_hash": {string(ih)}, "peer_id": {peer}, "port": {port}, "left": {left}, "event": {event}, "compact": {"1"}}
	}
	seed := "127.0.0.1:" + itoa(s.PeerPort())
	tests := []struct {
		name    string
		q       url.Values
		failure string   // a failure reason containing this
		peers   []string // the peers answered, in any order
	}{
		{"unknown torrent", url.Values{"info_hash": {strings.Repeat("x", 20)}, "peer_id": {strings.Repeat("p", 20)}, "port": {"1"}}, "unknown torrent", nil},
		{"short info_hash", url.Values{"info_hash": {"abc"}}, "info_hash", nil},
		{"no peer_id", url.Values{"info_hash": {string(ih)}}, "peer_id", nil},
		{"first device gets the seed", q(strings.Repeat("a", 20), "7001", "1000", "started"), "", []string{seed}},
		{"second device gets the seed and the first", q(strings.Repeat("b", 20), "7002", "1000", "started"), "", []string{seed, "127.0.0.1:7001"}},
		{"first device stops", q(strings.Repeat("a", 20), "7001", "0", "stopped"), "", []string{seed, "127.0.0.1:7002"}},
		{"third device no longer gets it", q(strings.Repeat("c", 20), "7003", "1000", ""), "", []string{seed, "127.0.0.1:7002"}},
	}
	for _, tt := range tests {
		m := announce(t, srv.URL, tt.q)
		if tt.failure != "" {
			if r, _ := m["failure reason"].(string); !strings.Contains(r, tt.failure) {
				t.Errorf("%s: answer %v, want a failure reason with %q", tt.name, m, tt.failure)
			}
			continue
		}
		if _, has := m["failure reason"]; has {
			t.Errorf("%s: answer %v has a failure reason key, which BEP 3 clients read as failure", tt.name, m)
		}
		got := compactPeers(t, m["peers"])
		if !sameSet(got, tt.peers) {
			t.Errorf("%s: peers %v, want %v", tt.name, got, tt.peers)
		}
	}
	if se, le := s.store.counts([20]byte(ih)); se != 0 || le != 2 {
		t.Errorf("tracker counts %d seeders %d leechers, want 0 and 2", se, le)
	}
}

func compactPeers(t testing.TB, v any) []string {
	b, ok := v.(string)
	if !ok || len(b)%6 != 0 {
		t.Fatalf("peers %v: want a compact string", v)
	}
	var out []string
	for i := 0; i < len(b); i += 6 {
		ip := net.IP([]byte(b[i : i+4]))
		out = append(out, net.JoinHostPort(ip.String(), itoa(int(b[i+4])<<8|int(b[i+5]))))
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x]--; seen[x] < 0 {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }

// FuzzAnnounce: whatever query a client sends, the tracker answers bencode (a peer list or
// a failure reason) or a plain HTTP error, and does not fall over.
func FuzzAnnounce(f *testing.F) {
	dir := f.TempDir()
	writeImage(f, dir, "os.img", 1000)
	s := newSwarm(f, Options{Dir: dir, Images: []string{"os.img"}})
	off, _ := s.Offer("os.img")
	ih, _ := hex.DecodeString(off.InfoHash)
	h := s.announceHandler()
	f.Add(url.Values{"info_hash": {string(ih)}, "peer_id": {strings.Repeat("a", 20)}, "port": {"6881"}, "left": {"0"}, "event": {"started"}}.Encode())
	f.Add("info_hash=%00&peer_id=x&port=99999&left=-1&event=bogus")
	f.Add("")
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest(http.MethodGet, AnnouncePath, nil)
		r.URL.RawQuery = q
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			var m map[string]any
			if err := bencode.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatalf("query %q: 200 with a body that is not bencode: %q", q, w.Body.Bytes())
			}
		}
	})
}

// TestDownloadFromSeed: a plain anacrolix client, web seeds off, gets the image through the
// tracker from the server's seed over loopback, and the seed's figures show the upload.
func TestDownloadFromSeed(t *testing.T) {
	size := 12<<20 + 777
	if mib, err := strconv.Atoi(os.Getenv("SWARM_TEST_MIB")); err == nil && mib > 0 {
		size = mib << 20 // a bigger image, to measure the seed's rate
	}
	tests := []struct {
		name    string
		size    int
		rate    int64         // swarm.upload_rate
		minTook time.Duration // what the cap makes the download take at least
	}{
		{"uncapped", size, 0, 0},
		// 8 MiB at 4 MiB/s: 2 s, less the limiter's burst of 0.4 s.
		{"upload_rate caps the seed", 8 << 20, 4 << 20, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { downloadFromSeed(t, tt.size, tt.rate, tt.minTook) })
	}
}

func downloadFromSeed(t *testing.T, size int, rate int64, minTook time.Duration) {
	dir := t.TempDir()
	img := writeImage(t, dir, "os.img.zst", size)
	hashStart := time.Now()
	s := newSwarm(t, Options{Dir: dir, Images: []string{"os.img.zst"}, Logger: testLogger(t), UploadRate: rate})
	t.Logf("metainfo of %d bytes built in %s", size, time.Since(hashStart).Round(time.Millisecond))
	srv := serve(t, s, dir)
	mi, code := fetchTorrent(t, srv.URL, "os.img.zst")
	if code != http.StatusOK {
		t.Fatalf("torrent: %d", code)
	}

	cfg := torrent.NewDefaultClientConfig()
	cfg.NoDHT, cfg.DisableWebseeds, cfg.DisableUTP, cfg.DisableWebtorrent, cfg.NoDefaultPortForwarding = true, true, true, true, true
	cfg.ListenHost = func(string) string { return "127.0.0.1" }
	cfg.ListenPort, cfg.DisableIPv6 = 0, true
	if l := testLogger(t); l != nil {
		cfg.Slogger = l.With("side", "client")
	}
	out := t.TempDir()
	cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{ClientBaseDir: out, PieceCompletion: storage.NewMapPieceCompletion(), UsePartFiles: falseOpt()})
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tor, err := cl.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	tor.DownloadAll()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	select {
	case <-tor.Complete().On():
	case <-ctx.Done():
		ts := tor.Stats()
		t.Fatalf("download did not complete: %d of %d bytes (pieces good %d bad %d, peers %d, seed %+v)", tor.BytesCompleted(), len(img),
			ts.PiecesDirtiedGood.Int64(), ts.PiecesDirtiedBad.Int64(), ts.ActivePeers, s.Stats())
	}
	took := time.Since(start)
	if took < minTook {
		t.Errorf("download took %s, the upload cap of %d bytes/s wants at least %s", took, rate, minTook)
	}
	t.Logf("%d bytes from the seed in %s (%.1f MiB/s)", len(img), took.Round(time.Millisecond), float64(len(img))/took.Seconds()/(1<<20))
	got, err := os.ReadFile(filepath.Join(out, "os.img.zst"))
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(img) {
		t.Fatal("downloaded bytes differ from the image")
	}
	ts := tor.Stats()
	if ws := ts.WebSeeds.BytesReadData.Int64(); ws != 0 {
		t.Errorf("%d bytes came from the web seed, which is off", ws)
	}
	st := s.Stats()
	if len(st) != 1 || st[0].Uploaded < int64(len(img)) {
		t.Errorf("seed stats %+v: want at least %d bytes uploaded", st, len(img))
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SWARM_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
