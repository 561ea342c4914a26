package flash

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/flash/internal/swarm"
	"github.com/flashline/flashline/agent/flash/internal/swarm/swarmtest"
)

// imageServer serves data at /image.img.gz (with Range, as the line server does) and mi at
// /image.torrent, counting the image bytes it sends: the server's egress.
func imageServer(t *testing.T, data []byte, mi *atomic.Pointer[[]byte]) (url string, served *atomic.Int64) {
	served = new(atomic.Int64)
	mod := time.Unix(1700000000, 0)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/image.img.gz":
			http.ServeContent(&countingWriter{w, served}, r, "image.img.gz", mod, bytes.NewReader(data))
		case "/image.torrent":
			w.Write(*mi.Load())
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	return ts.URL, served
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// swarmImage is a gzip image of 8 MiB (about 1.2 MiB compressed), its torrent (with the web seed at the test server)
// and the server.
type swarmImage struct {
	img, gz, mi []byte
	url         string
	served      *atomic.Int64
	infoHash    string
}

func newSwarmImage(t *testing.T, seed uint64) *swarmImage {
	s := &swarmImage{img: testImage(8<<20, seed)}
	s.gz = compress(t, "gzip", s.img)
	// The web seed is the server's own URL, known once it runs: it serves the metainfo
	// through a pointer set right after.
	var mi atomic.Pointer[[]byte]
	s.url, s.served = imageServer(t, s.gz, &mi)
	s.mi = swarmtest.Metainfo(t, s.gz, 256<<10, s.url+"/image.img.gz")
	mi.Store(&s.mi)
	tor, err := swarm.Parse(s.mi)
	if err != nil {
		t.Fatal(err)
	}
	s.infoHash = tor.InfoHash.HexString()
	return s
}

func (s *swarmImage) torrentFile(t *testing.T) string { return writeFile(t, "image.torrent", s.mi) }

func (s *swarmImage) check(t *testing.T, res Result, err error, dst string) {
	t.Helper()
	if err != nil {
		t.Fatalf("flash: %v", err)
	}
	if res.SHA256 != sum(s.img) || !bytes.Equal(readFile(t, dst)[:len(s.img)], s.img) {
		t.Fatal("the target does not hold the image")
	}
}

// TestSwarmFlash: the image comes from a seed through the real pipeline (gzip decoding,
// SHA-256, the writes), the server sends no image byte, and the window stays in its bound.
func TestSwarmFlash(t *testing.T) {
	s := newSwarmImage(t, 21)
	seed := swarmtest.StartSeed(t, s.gz, s.mi, swarmtest.SeedOptions{})
	for _, torrent := range []string{"file", "url"} {
		t.Run(torrent, func(t *testing.T) {
			s.served.Store(0)
			spec := s.torrentFile(t)
			if torrent == "url" {
				spec = s.url + "/image.torrent"
			}
			dst := writeFile(t, "disk", nil)
			const window = 512 << 10 // well under the image
			res, err := Write(t.Context(), Options{Source: s.url + "/image.img.gz", Target: dst, SHA256: sum(s.img), NoDirect: true,
				Swarm: &Swarm{Torrent: spec, InfoHash: s.infoHash, Peers: []string{seed.Addr}, Window: window}})
			s.check(t, res, err, dst)
			sw := res.Swarm
			t.Logf("swarm: %+v, served over HTTP %d", sw, s.served.Load())
			if !sw.Used || sw.Fallback != "" || sw.FromHTTP != 0 || s.served.Load() != 0 {
				t.Errorf("swarm %+v, %d bytes served over HTTP: want everything from the seed", sw, s.served.Load())
			}
			if sw.FromPeers < int64(len(s.gz)) {
				t.Errorf("%d bytes from peers, want %d", sw.FromPeers, len(s.gz))
			}
			// The seed runs on the server's host (127.0.0.1): its pieces count as the server's.
			if sw.FromServer != sw.FromPeers {
				t.Errorf("%d of %d bytes counted from the server's seed, want all", sw.FromServer, sw.FromPeers)
			}
			if sw.MaxHeld == 0 || sw.MaxHeld > window {
				t.Errorf("window held at most %d bytes, bound %d", sw.MaxHeld, window)
			}
			// A regular-file target keeps the pieces past the window beside it, and the
			// scratch file is gone once the flash is.
			if sw.Spool != dst+".swarm-spool" || sw.Spooled < int64(len(s.gz))-2*window {
				t.Errorf("spool %q with %d bytes, want %s.swarm-spool with about the %d-byte download", sw.Spool, sw.Spooled, dst, len(s.gz))
			}
			if _, err := os.Stat(dst + ".swarm-spool"); !os.IsNotExist(err) {
				t.Errorf("the spool is still there after the flash: %v", err)
			}
		})
	}
	t.Run("spool off", func(t *testing.T) {
		dst := writeFile(t, "disk", nil)
		res, err := Write(t.Context(), Options{Source: s.url + "/image.img.gz", Target: dst, SHA256: sum(s.img), NoDirect: true,
			Swarm: &Swarm{Torrent: s.torrentFile(t), Peers: []string{seed.Addr}, Window: 512 << 10, Spool: "off"}})
		s.check(t, res, err, dst)
		if res.Swarm.Spool != "" || res.Swarm.Spooled != 0 {
			t.Errorf("spool %q with %d bytes, want none", res.Swarm.Spool, res.Swarm.Spooled)
		}
	})
}

// TestSwarmFallsBack: whatever is wrong with the swarm, the flash ends right over HTTP.
func TestSwarmFallsBack(t *testing.T) {
	s := newSwarmImage(t, 22)
	bad := swarmtest.StartSeed(t, s.gz, s.mi, swarmtest.SeedOptions{Corrupt: true})
	for _, tc := range []struct {
		name     string
		swarm    Swarm
		used     bool
		warning  string
		badPeers int
	}{
		{name: "no peer", swarm: Swarm{InfoHash: s.infoHash}, used: true, warning: "the rest over HTTP from byte 0"},
		{name: "other infohash", swarm: Swarm{InfoHash: strings.Repeat("ab", 20), Peers: []string{bad.Addr}}, warning: "swarm not used: "},
		{name: "metainfo missing", swarm: Swarm{Torrent: "/nonexistent.torrent"}, warning: "swarm not used: torrent: open"},
		{name: "metainfo unreachable", swarm: Swarm{Torrent: "http://127.0.0.1:1/x.torrent"}, warning: "swarm not used: torrent: "},
		{name: "corrupt peer only", swarm: Swarm{InfoHash: s.infoHash, Peers: []string{bad.Addr}}, used: true, warning: "the rest over HTTP from byte 0", badPeers: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.served.Store(0)
			sw := tc.swarm
			if sw.Torrent == "" {
				sw.Torrent = s.torrentFile(t)
			}
			sw.Stall = time.Second
			dst := writeFile(t, "disk", nil)
			t0 := time.Now()
			res, err := Write(t.Context(), Options{Source: s.url + "/image.img.gz", Target: dst, SHA256: sum(s.img), NoDirect: true, Swarm: &sw})
			s.check(t, res, err, dst)
			t.Logf("%v: swarm %+v, warnings %q", time.Since(t0), res.Swarm, res.Warnings)
			if res.Swarm.Used != tc.used {
				t.Errorf("swarm used %v, want %v", res.Swarm.Used, tc.used)
			}
			if !strings.Contains(strings.Join(res.Warnings, "\n"), tc.warning) {
				t.Errorf("warnings %q, want one with %q", res.Warnings, tc.warning)
			}
			if s.served.Load() != int64(len(s.gz)) {
				t.Errorf("server sent %d bytes, want the image's %d once", s.served.Load(), len(s.gz))
			}
			if res.Swarm.BadPeers != tc.badPeers {
				t.Errorf("%d peers banned, want %d", res.Swarm.BadPeers, tc.badPeers)
			}
		})
	}
}

// TestSwarmPeerVanishes: the only seed goes away mid-transfer; within the stall time the
// flash goes on over HTTP from where the swarm stopped, so the server sends only the rest.
func TestSwarmPeerVanishes(t *testing.T) {
	s := newSwarmImage(t, 23)
	seed := swarmtest.StartSeed(t, s.gz, s.mi, swarmtest.SeedOptions{UploadRate: 512 << 10})
	var vanished atomic.Int64
	opened := func(src *swarm.Source) {
		go func() {
			for src.Stats().Read < int64(len(s.gz)/4) {
				time.Sleep(20 * time.Millisecond)
			}
			seed.Close()
			vanished.Store(time.Now().UnixNano())
		}()
	}
	dst := writeFile(t, "disk", nil)
	const stall = 2 * time.Second
	res, err := Write(t.Context(), Options{Source: s.url + "/image.img.gz", Target: dst, SHA256: sum(s.img), NoDirect: true,
		Swarm: &Swarm{Torrent: s.torrentFile(t), InfoHash: s.infoHash, Peers: []string{seed.Addr}, Stall: stall, opened: opened}})
	s.check(t, res, err, dst)
	after := time.Since(time.Unix(0, vanished.Load()))
	t.Logf("swarm %+v, served %d, %v after the seed vanished", res.Swarm, s.served.Load(), after)
	if res.Swarm.Fallback == "" || res.Swarm.FromHTTP == 0 || res.Swarm.FromHTTP >= int64(len(s.gz)) {
		t.Errorf("swarm %+v: want part from the seed, the rest over HTTP", res.Swarm)
	}
	if s.served.Load() != res.Swarm.FromHTTP {
		t.Errorf("server sent %d bytes, the flash counts %d from it", s.served.Load(), res.Swarm.FromHTTP)
	}
	if after > stall+5*time.Second {
		t.Errorf("the flash ended %v after the seed vanished", after)
	}
}

// TestSwarmLinger: after a verified flash the device seeds; another device gets the whole
// image from it alone, and the linger ends a few seconds after that device is done, well
// before its bound.
func TestSwarmLinger(t *testing.T) {
	s := newSwarmImage(t, 24)
	seed := swarmtest.StartSeed(t, s.gz, s.mi, swarmtest.SeedOptions{})
	var a atomic.Pointer[swarm.Source]
	seeding := make(chan struct{})
	var once atomic.Bool
	dst := writeFile(t, "disk", nil)
	type out struct {
		res Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := Write(context.Background(), Options{Source: s.url + "/image.img.gz", Target: dst, SHA256: sum(s.img), NoDirect: true,
			ProgressInterval: 10 * time.Millisecond,
			Progress: func(p Progress) {
				if p.Phase == "seed" && once.CompareAndSwap(false, true) {
					close(seeding)
				}
			},
			Swarm: &Swarm{Torrent: s.torrentFile(t), InfoHash: s.infoHash, Peers: []string{seed.Addr}, Window: 16 << 20,
				Linger: time.Minute, opened: func(src *swarm.Source) { a.Store(src) }}})
		done <- out{res, err}
	}()
	select {
	case <-seeding:
	case o := <-done:
		t.Fatalf("flash ended without seeding: %v", o.err)
	}
	seed.Close() // from now on only A has the image
	tor, err := swarm.Parse(s.mi)
	if err != nil {
		t.Fatal(err)
	}
	b, err := swarm.Open(t.Context(), swarm.Options{Torrent: tor, Peers: []string{a.Load().Addr()}, NoPEX: true, Stall: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), s.gz) {
		t.Fatal("B got other bytes than the image from A")
	}
	bDone := time.Now()
	o := <-done
	s.check(t, o.res, o.err, dst)
	t.Logf("A: %+v; linger ended %v after B finished", o.res.Swarm, time.Since(bDone))
	if o.res.Swarm.Uploaded < int64(len(s.gz)) {
		t.Errorf("A uploaded %d bytes, want the image's %d", o.res.Swarm.Uploaded, len(s.gz))
	}
	if o.res.Swarm.Lingered >= time.Minute || time.Since(bDone) > 10*time.Second {
		t.Errorf("lingered %v, %v after the last peer was done", o.res.Swarm.Lingered, time.Since(bDone))
	}
}

func TestSpoolBase(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name              string
		image, disk, down int64
		base              int64 // -1: no spool
	}{
		{"after the image, from the next MiB", 10*mib + 1, 100 * mib, 5 * mib, 11 * mib},
		{"image ending on a MiB", 10 * mib, 100 * mib, 5 * mib, 10 * mib},
		{"fits up to the last MiB", 10 * mib, 100 * mib, 89 * mib, 10 * mib},
		{"would reach the last MiB", 10 * mib, 100 * mib, 89*mib + 1, -1},
		{"image fills the disk", 100 * mib, 100 * mib, mib, -1},
		{"size unknown", -1, 100 * mib, mib, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, why := spoolBase(tc.image, tc.disk, tc.down)
			if tc.base < 0 {
				if why == "" {
					t.Errorf("spool at %d, want none", base)
				}
				return
			}
			if why != "" || base != tc.base {
				t.Errorf("spool at %d (%q), want %d", base, why, tc.base)
			}
		})
	}
}
