package flash

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/flashline/flashline/agent/flash/internal/source"
	"github.com/flashline/flashline/agent/flash/internal/swarm"
)

// DefaultLinger is how long a device seeds after a verified flash when the job does not say.
const DefaultLinger = 60 * time.Second

// Swarm is how Write gets the image from a BitTorrent swarm. Source stays the image's URL
// (or file): the torrent is of exactly those bytes, and the flash goes on from there when
// the swarm cannot deliver.
type Swarm struct {
	Torrent  string // URL or file of the image's metainfo (.torrent)
	InfoHash string // hex v1 infohash the metainfo must have (signed with the job); "" any
	// Linger is how long to keep serving after the flash is verified, cut short when no
	// peer wants anything for a few seconds; 0 means none.
	Linger time.Duration
	Peers  []string // host:port of peers to connect to besides the tracker's
	Port   int      // TCP port to listen on for peers; 0 picks a free one
	// Window bounds the memory the pieces take (default 32 MiB).
	Window int64
	// Stall is how long the swarm may deliver nothing before the flash goes on over HTTP
	// (default 5 s).
	Stall      time.Duration
	UploadRate int64 // bytes/s this device serves at most; 0 no cap

	// opened, when set, is told about the swarm source once it is open (tests).
	opened func(*swarm.Source)
}

// SwarmResult says where a swarm flash's bytes came from.
type SwarmResult struct {
	Used       bool   // the metainfo was loaded and the swarm joined
	Fallback   string // why (and from which byte) the rest came over HTTP; "" when it did not
	FromPeers  int64  // useful piece data from peers (the server's seed included)
	FromServer int64  // the part of FromPeers from the server's seed (a peer at SOURCE's host)
	FromHTTP   int64  // bytes fetched from the web seed URL over plain HTTP
	Uploaded   int64  // piece data served to other devices, linger included
	MaxHeld    int64  // most bytes the memory window held at once
	BadPeers   int    // peers banned for sending corrupt pieces
	Lingered   time.Duration
}

// swarmSource is the source stage over a swarm: verified pieces in order, and once the
// swarm stalls, the rest from the image's URL with Range from where it stopped (the plain
// HTTP source, retries and all: nothing is weaker than a flash over HTTP).
type swarmSource struct {
	ctx      context.Context
	sw       *swarm.Source
	spec     string
	opts     source.Options
	log      *slog.Logger
	http     source.Source            // the reading goroutine's
	fallback atomic.Pointer[fellBack] // for Stats, from any goroutine
}

type fellBack struct {
	why  string
	src  source.Source
	from int64
}

// openSwarm joins the swarm for opts.Source. An unusable metainfo is no flash failure: it
// returns a nil source and the reason, and the flash goes over HTTP.
func openSwarm(ctx context.Context, opts Options, sopts source.Options, log *slog.Logger) (*swarmSource, string, error) {
	sw := opts.Swarm
	if opts.Source == "-" {
		return nil, "", fail("--torrent needs SOURCE as a URL or a file, not standard input")
	}
	t, err := swarm.Load(ctx, sw.Torrent, opts.HTTPClient)
	if err == nil {
		err = t.CheckInfoHash(sw.InfoHash)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", fail("%w", ctx.Err())
		}
		return nil, err.Error(), nil
	}
	s, err := swarm.Open(ctx, swarm.Options{
		Torrent: t, Peers: sw.Peers, ListenPort: sw.Port, Window: sw.Window, Stall: sw.Stall,
		UploadRate: sw.UploadRate, Logger: log, ServerHost: urlHost(opts.Source),
	})
	if err != nil {
		return nil, err.Error(), nil
	}
	if sw.opened != nil {
		sw.opened(s)
	}
	log.Info("joined the swarm", "torrent", sw.Torrent, "infohash", t.InfoHash.HexString(), "bytes", t.Info.Length, "piece", t.Info.PieceLength)
	return &swarmSource{ctx: ctx, sw: s, spec: opts.Source, opts: sopts, log: log}, "", nil
}

func (s *swarmSource) Read(p []byte) (int, error) {
	if s.http != nil {
		return s.http.Read(p)
	}
	n, err := s.sw.Read(p)
	if !errors.Is(err, swarm.ErrStalled) {
		return n, err
	}
	// The swarm has nothing for us: the rest from the server, over plain HTTP.
	off := s.sw.Offset()
	why := fmt.Sprintf("%v; the rest over HTTP from byte %d", err, off)
	s.log.Warn("swarm stalled, going on over HTTP", "at", off, "err", err)
	s.sw.StopDownload()
	o := s.opts
	o.Offset = off
	h, err := source.Open(s.ctx, s.spec, o)
	if err != nil {
		return 0, err
	}
	if sz := h.Size(); sz >= 0 && sz != s.sw.Size() {
		h.Close()
		return 0, fmt.Errorf("source %s is %d bytes, its torrent %d", s.spec, sz, s.sw.Size())
	}
	s.http = h
	s.fallback.Store(&fellBack{why: why, src: h, from: off})
	return h.Read(p)
}

func (s *swarmSource) Size() int64 { return s.sw.Size() }

func (s *swarmSource) Stats() source.Stats {
	if f := s.fallback.Load(); f != nil {
		return f.src.Stats() // counts from the file's start
	}
	return source.Stats{Read: s.sw.Stats().Read}
}

func (s *swarmSource) result() SwarmResult {
	st := s.sw.Stats()
	r := SwarmResult{Used: true, FromPeers: st.FromPeers, FromServer: st.FromServer, Uploaded: st.Uploaded, MaxHeld: st.MaxHeld, BadPeers: st.BadPeers}
	if f := s.fallback.Load(); f != nil {
		r.Fallback = f.why
		r.FromHTTP = f.src.Stats().Read - f.from
	}
	return r
}

func (s *swarmSource) Close() error {
	if s.http != nil {
		s.http.Close()
	}
	return s.sw.Close()
}

// urlHost is an http(s) URL's host, "" for anything else.
func urlHost(spec string) string {
	u, err := url.Parse(spec)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" {
		return ""
	}
	return u.Hostname()
}
