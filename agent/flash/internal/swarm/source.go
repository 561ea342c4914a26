// Package swarm is the flash pipeline's BitTorrent source: the image's compressed bytes,
// in order, from the line's swarm (peers and the server's seed), each piece checked against
// the metainfo's SHA-1 by the library before the reader sees it, held in a bounded memory
// window that is also served to other peers while it downloads, the peer furthest along
// first (uplink), with the server's seed asked only for what other devices cannot give
// (serverGate). It is built on github.com/anacrolix/torrent and speaks plain BitTorrent
// over TCP: no DHT, no uTP, no WebRTC, no web seed (falling back to HTTP is the caller's,
// see ErrStalled).
package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent"

	"golang.org/x/time/rate"
)

// Defaults.
const (
	DefaultWindow = 32 << 20
	DefaultStall  = 5 * time.Second
	// DefaultIdle is how long a linger waits for a peer to want something before it ends.
	DefaultIdle = 3 * time.Second
)

// maxStallWaits bounds how many Stall periods one Read waits while bytes arrive but the
// piece at the read position does not complete.
const maxStallWaits = 8

// ErrStalled is the swarm delivering nothing for Options.Stall: the caller goes on over
// HTTP from Offset.
var ErrStalled = errors.New("no data from the swarm")

// Options configure a swarm source.
type Options struct {
	Torrent *Torrent
	// Peers are host:port addresses to connect to besides those the tracker names (a test,
	// or a seed known out of band).
	Peers []string
	// ListenPort is the TCP port peers connect to; 0 picks a free one, which the tracker
	// announce tells the others.
	ListenPort int
	// Window bounds the memory the pieces take (default 32 MiB; at least two pieces).
	Window int64
	// Stall is how long no byte arrives before Read returns ErrStalled (default 5 s).
	Stall time.Duration
	// UploadRate caps what this device serves, bytes/s; 0 is no cap.
	UploadRate int64
	// ServerHost is the line server's host (SOURCE's): the piece data from a peer at one of
	// its addresses is counted as the server seed's in Stats.FromServer.
	ServerHost string
	// SeedQuiet is how long no other peer may have the next piece before this device asks
	// the server's seed (ServerHost's) again, and the least time it then stays asked
	// (default 1.5 s; see serverGate). Negative: the seed is asked like any peer.
	SeedQuiet time.Duration
	// NoPEX stops peers from telling this one about others (a test that wants to know
	// where the bytes came from).
	NoPEX  bool
	Logger *slog.Logger
}

// Stats are a swarm source's counters.
type Stats struct {
	Read       int64 // bytes delivered to the reader
	FromPeers  int64 // useful piece data received from peers (the server's seed counts here)
	FromServer int64 // the part of FromPeers that came from the server's seed (Options.ServerHost)
	Uploaded   int64 // piece data served to peers
	Peers      int   // connected peers now
	Held       int64 // bytes the window holds now
	Spooled    int64 // bytes of pieces served from the spool
	SpoolErr   error // why the spool stopped taking pieces, if it did
	SeedOpens  int   // times the server's seed was asked again after other peers went quiet
	MaxHeld    int64 // most bytes the window held at once
	BadPeers   int   // peers banned for corrupt data
}

// Source reads the torrent's one file from its start. One goroutine reads it.
type Source struct {
	ctx  context.Context
	opts Options
	cl   *torrent.Client
	t    *torrent.Torrent
	r    torrent.Reader
	win  *window
	size int64
	off  int64
	read atomic.Int64
	// fromServer counts piece data from the server's seed.
	fromServer *atomic.Int64
	gate       *serverGate // nil: the seed is a peer like any other
	stopGate   func()
	close      func()
}

// Open starts a client and joins the torrent's swarm. It does not wait for a peer.
func Open(ctx context.Context, opts Options) (*Source, error) {
	if opts.Torrent == nil {
		return nil, errors.New("swarm: no torrent")
	}
	info := &opts.Torrent.Info
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	opts.Window = max(opts.Window, 2*info.PieceLength)
	if opts.Stall <= 0 {
		opts.Stall = DefaultStall
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := torrent.NewDefaultClientConfig()
	cfg.NoDHT = true
	cfg.DisableUTP = true
	// TCP is the uplink's (see uplink): its own listener and dialer order the uploads.
	cfg.DisableTCP = true
	cfg.DisableWebtorrent = true
	cfg.DisableWebseeds = true // HTTP is the fallback after a stall, not a parallel source
	cfg.NoDefaultPortForwarding = true
	cfg.Seed = true
	cfg.MaxUnverifiedBytes = opts.Window / 2
	// v1.59.1 serves a peer's requests one at a time in map order, each waiting for its
	// share of this allocation limit: once a peer has more than the limit outstanding
	// (1 MiB by default, and a reader's readahead of 4 MiB is enough) it can wait on a
	// request queued behind ones that are never served, and the upload to that peer stops
	// for good. At the library's request queue (1024) x 16 KiB no request ever waits.
	// Memory is taken only for requests being sent, which peers bound by their readahead.
	cfg.MaxAllocPeerRequestDataPerConn = 16 << 20
	// Piece data is verified and peers that send bad data are banned; the library's chatter
	// is for its own debugging.
	cfg.Logger = alog.Default.FilterLevel(alog.Critical)
	cfg.Slogger = slog.New(slog.DiscardHandler)
	if os.Getenv("FLASHLINE_SWARM_DEBUG") != "" {
		cfg.Logger = alog.Default
		cfg.Slogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.DisablePEX = opts.NoPEX
	// Header obfuscation is for ISPs that throttle BitTorrent; on a line it only costs a
	// Diffie-Hellman exchange per connection. Obfuscated peers are still accepted.
	cfg.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: false}
	if opts.UploadRate > 0 {
		cfg.UploadRateLimiter = rate.NewLimiter(rate.Limit(opts.UploadRate), 0) // the library sets the burst to a request's size
	}
	win := newWindow(opts.Window)
	cfg.DefaultStorage = win
	fromServer := new(atomic.Int64)
	var gate *serverGate
	if server := serverAddrs(ctx, opts.ServerHost); len(server) > 0 {
		gate = newServerGate(server, opts.SeedQuiet, win.firstMissing)
		// Called under the client's lock for every useful block: a map look-up and an add.
		cfg.Callbacks.ReceivedUsefulData = append(cfg.Callbacks.ReceivedUsefulData, func(ev torrent.ReceivedUsefulDataEvent) {
			if gate.isServer(ev.Peer.RemoteAddr) {
				fromServer.Add(int64(len(ev.Message.Piece)))
			}
		})
		if opts.SeedQuiet >= 0 {
			cfg.IPBlocklist = gate
			cfg.Callbacks.PeerConnAdded = append(cfg.Callbacks.PeerConnAdded, gate.added)
		} else {
			gate = nil
		}
	}
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("swarm: start client: %w", err)
	}
	up := newUplink()
	ln, err := up.listen(cl, opts.ListenPort)
	if err != nil {
		cl.Close()
		return nil, err
	}
	closeClient := func() {
		cl.Close()
		ln.Close()
	}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(opts.Torrent.MI)
	if err != nil {
		closeClient()
		return nil, fmt.Errorf("swarm: %w", err)
	}
	spec.Webseeds = nil
	spec.Storage = win
	t, _, err := cl.AddTorrentSpec(spec)
	if err != nil {
		closeClient()
		return nil, fmt.Errorf("swarm: add torrent: %w", err)
	}
	win.dropped = func(i int) { go t.Piece(i).UpdateCompletion() }
	var peers []torrent.PeerInfo
	for _, p := range opts.Peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			closeClient()
			return nil, fmt.Errorf("swarm: peer %q: %w", p, err)
		}
		peers = append(peers, torrent.PeerInfo{Addr: torrent.StringAddr(p), Source: torrent.PeerSourceDirect})
	}
	t.AddPeers(peers)
	r := t.NewReader()
	// The reader's readahead is what the library asks peers for; the rest of the window
	// keeps pieces behind the reader for the others.
	r.SetReadahead(min(opts.Window/2, info.Length))
	s := &Source{ctx: ctx, opts: opts, cl: cl, t: t, r: r, win: win, size: info.Length, fromServer: fromServer, gate: gate}
	gctx, stopGate := context.WithCancel(ctx)
	if gate != nil {
		go gate.run(gctx, t)
	}
	go up.rank(gctx, t, 250*time.Millisecond)
	s.stopGate = stopGate
	s.close = func() {
		stopGate()
		r.Close()
		closeClient()
	}
	return s, nil
}

// SetSpool gives the source a spool of capacity bytes (from its offset 0) for the pieces the
// memory window lets go of, so that they are still served. It may be called once the
// source is open and reading: pieces dropped before are not served again.
func (s *Source) SetSpool(sp Spool, capacity int64) {
	s.win.setSpool(sp, capacity)
}

// Size is the file's length.
func (s *Source) Size() int64 { return s.size }

// Offset is how many bytes Read has delivered.
func (s *Source) Offset() int64 { return s.off }

// Addr is the address peers reach this client at.
func (s *Source) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cl.LocalPort()))
}

// Read delivers the next verified bytes. It returns ErrStalled (wrapped) when no byte has
// arrived from the swarm for Options.Stall, or the next piece has not completed in
// maxStallWaits of them; the source stays usable for serving peers.
func (s *Source) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	// A stall is no byte arriving for Stall, not no piece completing: on a shared uplink a
	// piece can take longer than Stall while its blocks keep coming, and falling back to HTTP
	// then only adds to the server's egress. The wait for one Read is still bounded
	// (maxStallWaits) for a piece whose blocks never come while other pieces' blocks do.
	got := s.usefulBytes()
	var n int
	var err error
	for waits := 1; ; waits++ {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.Stall)
		n, err = s.r.ReadContext(ctx, p)
		cancel()
		if n > 0 || !errors.Is(err, context.DeadlineExceeded) || s.ctx.Err() != nil || waits >= maxStallWaits {
			break
		}
		now := s.usefulBytes()
		if now == got {
			break
		}
		got = now
	}
	if n > 0 {
		s.off += int64(n)
		s.read.Store(s.off)
		s.win.setReadPos(s.off)
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF) && s.off == s.size:
		return n, io.EOF
	case s.ctx.Err() != nil:
		return n, s.ctx.Err()
	case n > 0:
		return n, nil // the error recurs on the next call
	case errors.Is(err, context.DeadlineExceeded):
		return 0, fmt.Errorf("%w for %v at byte %d of %d", ErrStalled, s.opts.Stall, s.off, s.size)
	}
	return 0, fmt.Errorf("swarm: %w", err)
}

// usefulBytes counts the wanted piece data received from peers so far.
func (s *Source) usefulBytes() int64 {
	ts := s.t.Stats()
	return ts.BytesReadUsefulData.Int64()
}

// Stats may be called from any goroutine.
func (s *Source) Stats() Stats {
	ts := s.t.Stats()
	held, maxHeld := s.win.stats()
	spooled, spoolErr := s.win.spoolStats()
	var opens int
	if s.gate != nil {
		s.gate.mu.Lock()
		opens = s.gate.opens
		s.gate.mu.Unlock()
	}
	return Stats{
		Spooled:    spooled,
		SpoolErr:   spoolErr,
		SeedOpens:  opens,
		Read:       s.read.Load(),
		FromPeers:  ts.BytesReadUsefulData.Int64(),
		FromServer: s.fromServer.Load(),
		Uploaded:   ts.BytesWrittenData.Int64(),
		Peers:      ts.ActivePeers,
		Held:       held,
		MaxHeld:    maxHeld,
		BadPeers:   badPeers(s.cl.BadPeerIPs()),
	}
}

// serverAddrs resolves the server's host to the set of its addresses; none when it cannot.
func serverAddrs(ctx context.Context, host string) map[string]bool {
	if host == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil
	}
	set := map[string]bool{}
	for _, a := range addrs {
		set[normalIP(a)] = true
	}
	return set
}

func normalIP(s string) string {
	if ip := net.ParseIP(s); ip != nil {
		return ip.String()
	}
	return s
}

// badPeers counts banned addresses: the library may hold one as IPv4 and as IPv4-mapped IPv6.
func badPeers(ips []string) int {
	seen := map[string]bool{}
	for _, s := range ips {
		if ip := net.ParseIP(s); ip != nil {
			s = ip.String()
		}
		seen[s] = true
	}
	return len(seen)
}

// StopDownload leaves the swarm's downloading (after a fall back to HTTP): the window keeps
// serving what it holds.
func (s *Source) StopDownload() {
	// Nothing more to fetch: the seed's connection is no cost to anyone now.
	s.stopGate()
	s.r.Close()
	s.t.DisallowDataDownload()
}

// Linger serves the pieces the window holds for at most d, ending early once no peer has
// wanted anything for idle (0: DefaultIdle), or when ctx ends.
func (s *Source) Linger(ctx context.Context, d, idle time.Duration) {
	if d <= 0 {
		return
	}
	if idle <= 0 {
		idle = DefaultIdle
	}
	s.StopDownload()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(min(idle/4, 500*time.Millisecond))
	defer tick.Stop()
	last, lastChange := s.Stats().Uploaded, time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
		if up := s.Stats().Uploaded; up != last || s.wanted() {
			last, lastChange = up, time.Now()
		} else if time.Since(lastChange) >= idle {
			return
		}
	}
}

// wanted tells whether a connected peer is downloading from this one right now.
func (s *Source) wanted() bool {
	for _, c := range s.t.PeerConns() {
		if c.Stats().LastWriteUploadRate > 0 {
			return true
		}
	}
	return false
}

// Close leaves the swarm.
func (s *Source) Close() error {
	s.close()
	return nil
}
