// Package swarm makes the line server a BitTorrent tracker and seed for its images, so that
// the line's devices fetch an image from each other and the server's uplink stops being the
// ceiling. It builds each image's metainfo once (the info dictionary is cached by file size
// and mtime beside the image hash cache), serves it as /images/<file>.torrent with the image's
// own HTTP URL as web seed (BEP 19), answers announces on /swarm/announce with the library's
// BEP 3 tracker handler over an in-memory peer store, and seeds every image from its file,
// read-only, with an upload cap. The protocol is github.com/anacrolix/torrent's.
package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	httpTrackerServer "github.com/anacrolix/torrent/tracker/http/server"
	trackerServer "github.com/anacrolix/torrent/tracker/server"
	"golang.org/x/time/rate"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
)

// AnnouncePath is the tracker's route on the server's HTTP listener.
const AnnouncePath = "/swarm/announce"

// Options configures a Swarm.
type Options struct {
	// Dir is the images directory; Images the files under it offered in the swarm.
	Dir    string
	Images []string
	// CacheFile remembers each image's info dictionary by size and mtime ("" caches nothing).
	CacheFile string
	// PeerPort is the seed's TCP port (0 picks a free one, for tests); ListenHost the address
	// it listens on ("" all).
	PeerPort   int
	ListenHost string
	// UploadRate caps the seed's upload in bytes per second; 0 is no cap.
	UploadRate int64
	// LingerSeconds goes into every job's swarm offer (config.Swarm.LingerSeconds).
	LingerSeconds int
	// PublicURL is how devices reach the HTTP server (http.public_url); empty means the
	// address each client connected to. ImagesURL is http.images_url: when set, it is the web
	// seed, as it is the job's image URL.
	PublicURL string
	ImagesURL string
	Logger    *slog.Logger
}

// image is one image in the swarm.
type image struct {
	file     string // under the images directory
	dir      string // its directory on this host
	hash     metainfo.Hash
	info     []byte // bencoded info dictionary
	length   int64
	computed bool // hashed at this start (not from the cache)
	t        *torrent.Torrent
}

// Swarm is the server's tracker and seed.
type Swarm struct {
	o      Options
	log    *slog.Logger
	images map[string]*image // by file
	byHash map[metainfo.Hash]*image
	store  *peerStore
	cl     *torrent.Client
	stor   storage.ClientImplCloser

	closeOnce sync.Once
}

// New builds every image's metainfo (from the cache when the file is unchanged), starts the
// seed and returns the Swarm; Run serves until its context ends.
func New(ctx context.Context, o Options) (*Swarm, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Swarm{o: o, log: o.Logger, images: map[string]*image{}, byHash: map[metainfo.Hash]*image{}}
	root, err := os.OpenRoot(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("swarm: images directory: %w", err)
	}
	defer root.Close()
	cache := loadMetaCache(o.CacheFile)
	var errs []error
	for _, f := range o.Images {
		if err := config.CheckRelPath(f); err != nil {
			errs = append(errs, fmt.Errorf("swarm: image %q: %w", f, err))
			continue
		}
		if _, dup := s.images[f]; dup {
			continue
		}
		p := filepath.Join(o.Dir, filepath.FromSlash(f))
		start := time.Now()
		info, computed, err := cache.infoFor(ctx, root, f, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("swarm: metainfo of %s: %w", f, err))
			continue
		}
		var mi metainfo.Info
		if err := bencode.Unmarshal(info, &mi); err != nil {
			errs = append(errs, fmt.Errorf("swarm: metainfo of %s: %w", f, err))
			continue
		}
		im := &image{file: f, dir: filepath.Dir(p), hash: metainfo.HashBytes(info), info: info, length: mi.Length, computed: computed}
		if other, ok := s.byHash[im.hash]; ok {
			// Two names for the same bytes would be one torrent in two directories.
			errs = append(errs, fmt.Errorf("swarm: %s and %s have the same content (infohash %s); offer one of them", other.file, f, im.hash.HexString()))
			continue
		}
		s.images[f], s.byHash[im.hash] = im, im
		from := "cache"
		if computed {
			from = "computed"
		}
		s.log.Info("swarm image", "file", f, "infohash", im.hash.HexString(), "bytes", mi.Length,
			"piece_length", mi.PieceLength, "pieces", mi.NumPieces(), "from", from, "took", time.Since(start).Round(time.Millisecond))
	}
	if err := cache.save(); err != nil {
		s.log.Warn("could not save the swarm metainfo cache", "file", o.CacheFile, "err", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	hashes := make([][20]byte, 0, len(s.byHash))
	for h := range s.byHash {
		hashes = append(hashes, h)
	}
	if err := s.startSeed(); err != nil {
		return nil, err
	}
	s.store = newPeerStore(hashes, s.cl.LocalPort(), time.Now)
	return s, nil
}

func (s *Swarm) startSeed() error {
	cfg := torrent.NewDefaultClientConfig()
	cfg.Seed = true
	// Only the line: no DHT, no port mapping on the plant's router, no WebRTC, no announcing
	// anywhere (the tracker lists the seed itself), TCP only.
	cfg.NoDHT = true
	cfg.NoDefaultPortForwarding = true
	cfg.DisableWebtorrent = true
	cfg.DisableWebseeds = true
	cfg.DisableTrackers = true
	cfg.DisableUTP = true
	cfg.ListenPort = s.o.PeerPort
	host := s.o.ListenHost
	cfg.ListenHost = func(string) string { return host }
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		cfg.DisableIPv6 = true // an IPv4 address has no tcp6 listener
	}
	cfg.DataDir = s.o.Dir
	// The library's default (1 MiB of requested data per connection) stalled a download after
	// two 1 MiB pieces in TestDownloadFromSeed; several pieces of the largest length keep
	// requests flowing. It bounds what one peer's requests can make the seed buffer.
	cfg.MaxAllocPeerRequestDataPerConn = 4 * 4 << 20
	cfg.Slogger = s.log
	if s.o.UploadRate > 0 {
		// A burst of at least one request's chunk, so that the limiter can pass it at all.
		cfg.UploadRateLimiter = rate.NewLimiter(rate.Limit(s.o.UploadRate), int(max(s.o.UploadRate/10, 1<<18)))
	}
	s.stor = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir: s.o.Dir,
		TorrentDirMaker: func(base string, _ *metainfo.Info, h metainfo.Hash) string {
			if im, ok := s.byHash[h]; ok {
				return im.dir
			}
			return filepath.Join(base, ".unknown-torrent") // never reached: only our torrents are added
		},
		PieceCompletion: verifiedCompletion{s.byHash},
		UsePartFiles:    falseOpt(),
		Logger:          s.log,
	})
	cfg.DefaultStorage = s.stor
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		s.stor.Close()
		return fmt.Errorf("swarm: start the seed on port %d: %w", s.o.PeerPort, err)
	}
	s.cl = cl
	for _, im := range s.byHash {
		t, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: im.hash, InfoBytes: im.info, DisableInitialPieceCheck: true})
		im.t = t
	}
	s.log.Info("swarm seed listening", "port", cl.LocalPort(), "images", len(s.byHash), "upload_rate", s.o.UploadRate)
	return nil
}

// verifiedCompletion tells the library that every piece of our torrents is there and good:
// the pieces were hashed from these very files (size and mtime unchanged), and the seed only
// reads them. Nothing is written beside the images.
type verifiedCompletion struct{ known map[metainfo.Hash]*image }

func (v verifiedCompletion) Get(k metainfo.PieceKey) (storage.Completion, error) {
	_, ok := v.known[k.InfoHash]
	return storage.Completion{Ok: ok, Complete: ok}, nil
}
func (v verifiedCompletion) Set(metainfo.PieceKey, bool) error { return nil }
func (v verifiedCompletion) Close() error                      { return nil }

// Run serves until ctx ends, then stops the seed.
func (s *Swarm) Run(ctx context.Context) error {
	<-ctx.Done()
	s.Close()
	return nil
}

// Close stops the seed and closes its files.
func (s *Swarm) Close() {
	s.closeOnce.Do(func() {
		if s.cl != nil {
			for _, err := range s.cl.Close() {
				s.log.Warn("swarm seed close", "err", err)
			}
		}
		if s.stor != nil {
			s.stor.Close()
		}
	})
}

// PeerPort is the port the seed listens on.
func (s *Swarm) PeerPort() int { return s.cl.LocalPort() }

// Offer is the swarm part of a job for the image file, or false when the file is not in
// the swarm.
func (s *Swarm) Offer(file string) (protocol.Swarm, bool) {
	im, ok := s.images[file]
	if !ok {
		return protocol.Swarm{}, false
	}
	return protocol.Swarm{Torrent: "/images/" + escapePath(file) + ".torrent", InfoHash: im.hash.HexString(), LingerSeconds: s.o.LingerSeconds}, true
}

// Hashed reports how many images were hashed at this start rather than taken from the cache.
func (s *Swarm) Hashed() int {
	n := 0
	for _, im := range s.images {
		if im.computed {
			n++
		}
	}
	return n
}

// Register adds the tracker's announce route.
func (s *Swarm) Register(mux *http.ServeMux) {
	mux.Handle("GET "+AnnouncePath, s.announceHandler())
}

func (s *Swarm) announceHandler() http.Handler {
	lib := httpTrackerServer.Handler{Announce: &trackerServer.AnnounceHandler{AnnounceTracker: s.store}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The library's handler answers 500 for a torrent it does not track; a BEP 3 client
		// understands a "failure reason" better, and the line's tracker is no open tracker.
		q := r.URL.Query()
		ih := q.Get("info_hash")
		var h [20]byte
		if len(ih) != len(h) {
			failure(w, "info_hash: want 20 bytes")
			return
		}
		copy(h[:], ih)
		if !s.store.known(h) {
			failure(w, "unknown torrent: this line server tracks only its own images")
			return
		}
		if len(q.Get("peer_id")) != 20 {
			failure(w, "peer_id: want 20 bytes")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		rec := &buffered{header: http.Header{}, code: http.StatusOK}
		lib.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		if rec.code == http.StatusOK {
			body = dropEmptyFailure(body)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(rec.code)
		w.Write(body)
	})
}

// buffered holds the library handler's answer (a few hundred bytes) for dropEmptyFailure.
type buffered struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *buffered) Header() http.Header         { return b.header }
func (b *buffered) WriteHeader(code int)        { b.code = code }
func (b *buffered) Write(p []byte) (int, error) { return b.body.Write(p) }

// dropEmptyFailure removes the empty "failure reason" the library's handler (v1.59.1) writes
// into every answer: BEP 3 makes the key's presence mean failure, and aria2 refuses such an
// answer ("Tracker returned failure reason: "). Anything that does not decode is left as it is.
func dropEmptyFailure(b []byte) []byte {
	var m map[string]bencode.Bytes
	if bencode.Unmarshal(b, &m) != nil {
		return b
	}
	var reason string
	if f, ok := m["failure reason"]; !ok || bencode.Unmarshal(f, &reason) != nil || reason != "" {
		return b
	}
	delete(m, "failure reason")
	out, err := bencode.Marshal(m)
	if err != nil {
		return b
	}
	return out
}

func failure(w http.ResponseWriter, reason string) {
	b, _ := bencode.Marshal(map[string]string{"failure reason": reason})
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// ServeTorrent answers GET /images/<file>.torrent: the standard metainfo (announce: this
// server's tracker; url-list: the image's HTTP URL, the same as the job's; info: name, length,
// piece length, pieces). It reports false, answering nothing, when file is not in the swarm.
func (s *Swarm) ServeTorrent(w http.ResponseWriter, r *http.Request, file string) bool {
	im, ok := s.images[file]
	if !ok {
		return false
	}
	base := s.baseURL(r)
	mi := metainfo.MetaInfo{InfoBytes: im.info, Announce: base + AnnouncePath, UrlList: []string{s.imageURL(base, file)},
		CreatedBy: "flashline-server"}
	b, err := bencode.Marshal(mi)
	if err != nil {
		http.Error(w, "encode metainfo", http.StatusInternalServerError)
		return true
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", `"`+im.hash.HexString()+`"`)
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(b)))
	return true
}

// baseURL is how this client reaches the server: http.public_url, else the address of the
// connection it came on. The Host header is not used: a torrent must not name a tracker or
// web seed a client chose.
func (s *Swarm) baseURL(r *http.Request) string {
	if s.o.PublicURL != "" {
		return strings.TrimRight(s.o.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if tcp, ok := la.(*net.TCPAddr); ok {
			ip := tcp.IP
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			return scheme + "://" + net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
		}
	}
	return scheme + "://" + r.Host
}

// imageURL is the web seed: the job's image URL, made absolute.
func (s *Swarm) imageURL(base, file string) string {
	p := escapePath(file)
	switch iu := s.o.ImagesURL; {
	case strings.HasPrefix(iu, "http://") || strings.HasPrefix(iu, "https://"):
		return strings.TrimRight(iu, "/") + "/" + p
	case iu != "":
		return base + strings.TrimRight(iu, "/") + "/" + p
	}
	return base + "/images/" + p
}

func escapePath(file string) string {
	els := strings.Split(file, "/")
	for i, e := range els {
		els[i] = url.PathEscape(e)
	}
	return strings.Join(els, "/")
}

// Stats are one image's swarm figures.
type Stats struct {
	File     string
	InfoHash string
	Length   int64
	// Peers is how many peers the seed is connected to; Seeders and Leechers how many
	// devices announced that they have the whole image or not (the seed not counted).
	Peers, Seeders, Leechers int
	// Uploaded is the image data the seed sent to peers.
	Uploaded int64
}

// Stats returns every image's figures, in file order.
func (s *Swarm) Stats() []Stats {
	out := make([]Stats, 0, len(s.images))
	for _, im := range s.images {
		st := Stats{File: im.file, InfoHash: im.hash.HexString(), Length: im.length}
		if im.t != nil {
			ts := im.t.Stats()
			st.Peers = ts.ActivePeers
			st.Uploaded = ts.BytesWrittenData.Int64()
		}
		st.Seeders, st.Leechers = s.store.counts(im.hash)
		out = append(out, st)
	}
	sortStats(out)
	return out
}

func sortStats(st []Stats) {
	slices.SortFunc(st, func(a, b Stats) int { return strings.Compare(a.File, b.File) })
}

func falseOpt() g.Option[bool] { return g.Some(false) }
