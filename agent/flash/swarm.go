package flash

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/flashline/flashline/agent/flash/internal/source"
	"github.com/flashline/flashline/agent/flash/internal/swarm"
	"github.com/flashline/flashline/agent/flash/target"
)

// DefaultLinger is how long a device seeds after a verified flash when the job does not say.
const DefaultLinger = 60 * time.Second

// swarmClientMemory is what the BitTorrent client takes beside its window (measured about
// 20 MiB over HTTP; see docs/flash.md), with a margin.
const swarmClientMemory = 24 << 20

// SwarmMemory is the memory a swarm flash needs on top of the flash's budget
// (Options.Memory): the window and the client. The process's memory limit must include it:
// a limit below the live heap makes the collector run back to back, and on a line of
// devices sharing two cores that was most of their CPU.
func SwarmMemory(sw *Swarm) int64 {
	if sw == nil {
		return 0
	}
	w := sw.Window
	if w <= 0 {
		w = swarm.DefaultWindow
	}
	return w + swarmClientMemory
}

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
	// SeedQuiet is how long no other peer may have the next piece before the server's seed
	// is asked (default 1.5 s); negative: the seed is asked like any peer.
	SeedQuiet time.Duration
	// Spool is where the pieces the memory window lets go of are kept, so that the device
	// serves the whole image it has, not only the window: "" (auto) is the disk after the
	// image on a block device with room for it, and a file beside a regular-file target;
	// "off" keeps none; anything else is a scratch file to use (and remove).
	Spool string

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
	Spool      string // where the pieces past the window were kept; "" none
	Spooled    int64  // bytes of pieces kept there
	SeedOpens  int    // times the server's seed was asked again after the other devices went quiet
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
	http     source.Source // the reading goroutine's
	spool    *spool
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
		UploadRate: sw.UploadRate, Logger: log, ServerHost: urlHost(opts.Source), SeedQuiet: sw.SeedQuiet,
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
	r := SwarmResult{Used: true, FromPeers: st.FromPeers, FromServer: st.FromServer, Uploaded: st.Uploaded,
		MaxHeld: st.MaxHeld, BadPeers: st.BadPeers, Spooled: st.Spooled, SeedOpens: st.SeedOpens}
	if s.spool != nil {
		r.Spool = s.spool.where
	}
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
	err := s.sw.Close()
	// Only once the client is gone: it reads the spool until then.
	if s.spool != nil {
		if cerr := s.spool.close(); cerr != nil {
			s.log.Warn("closing the swarm spool", "err", cerr)
		}
	}
	return err
}

// attachSpool gives the swarm a spool on (or beside) the open target; imageSize is the
// image's decoded size, -1 when unknown. No spool is no failure: the window alone serves.
func (s *swarmSource) attachSpool(spec string, tgt *target.Target, imageSize int64) {
	sp, why := openSpool(spec, tgt, imageSize, s.sw.Size())
	if sp == nil {
		s.log.Info("swarm: serving only the memory window", "why", why)
		return
	}
	s.spool = sp
	s.sw.SetSpool(sp, s.sw.Size())
	s.log.Info("swarm: pieces past the memory window kept", "in", sp.where)
}

// spool is a region of a file or disk, from base on, holding the torrent's pieces.
type spool struct {
	f      *os.File
	base   int64
	where  string
	remove bool // a scratch file of ours
}

func (s *spool) ReadAt(b []byte, off int64) (int, error)  { return s.f.ReadAt(b, s.base+off) }
func (s *spool) WriteAt(b []byte, off int64) (int, error) { return s.f.WriteAt(b, s.base+off) }

func (s *spool) close() error {
	err := s.f.Close()
	if s.remove {
		if rerr := os.Remove(s.f.Name()); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// openSpool decides where the pieces go (see Swarm.Spool); nil and why when nowhere.
//
// On a disk the pieces go after the image, from the next MiB on, and never into the last
// MiB (the backup GPT's): space the image does not use, which the new firmware sees as
// unallocated. Knowing where the image ends needs its size (--size, a bmap, or a job).
func openSpool(spec string, tgt *target.Target, imageSize, torrentSize int64) (*spool, string) {
	switch {
	case spec == "off":
		return nil, "spool off"
	case spec != "":
		f, err := os.OpenFile(spec, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Sprintf("spool: %v", err)
		}
		return &spool{f: f, where: spec, remove: true}, ""
	case tgt.Kind == target.BlockDevice:
		base, why := spoolBase(imageSize, tgt.Size(), torrentSize)
		if why != "" {
			return nil, why
		}
		// Not O_EXCL: the target's own descriptor holds the disk exclusively.
		f, err := os.OpenFile(tgt.Path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Sprintf("spool: %v", err)
		}
		return &spool{f: f, base: base, where: fmt.Sprintf("%s from byte %d", tgt.Path, base)}, ""
	default:
		path := tgt.Path + ".swarm-spool"
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Sprintf("spool beside the target: %v", err)
		}
		return &spool{f: f, where: path, remove: true}, ""
	}
}

// urlHost is an http(s) URL's host, "" for anything else.
func urlHost(spec string) string {
	u, err := url.Parse(spec)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" {
		return ""
	}
	return u.Hostname()
}

// spoolBase is where on a disk of diskSize bytes the spool of a torrentSize-byte download
// starts: the MiB after the image's end, leaving the disk's last MiB alone. "" why when it
// fits.
func spoolBase(imageSize, diskSize, torrentSize int64) (int64, string) {
	if imageSize <= 0 {
		return 0, "the image's size is not known before it is written, so neither is where it ends"
	}
	base := (imageSize + HoldBack - 1) / HoldBack * HoldBack
	if base+torrentSize > diskSize-HoldBack {
		return 0, fmt.Sprintf("the disk (%d bytes) has no room for the %d-byte download after the %d-byte image", diskSize, torrentSize, imageSize)
	}
	return base, ""
}
