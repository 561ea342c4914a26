package swarm

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/tracker"
	trackerServer "github.com/anacrolix/torrent/tracker/server"
	"github.com/anacrolix/torrent/tracker/udp"
)

// announceInterval is what peers are told to wait between announces. Short, because a
// device is on the line for minutes, not days, and a late device should be found soon.
const announceInterval = 30 * time.Second

// maxPeersPerTorrent bounds the tracker's memory whatever announces: a line has tens or
// hundreds of devices, never thousands per image.
const maxPeersPerTorrent = 4096

var errUnknownTorrent = errors.New("not a torrent of this line server")

type peer struct {
	seen time.Time
	left int64
}

// peerStore is the tracker's state: who announced which of this server's torrents, forgotten
// when they stop or miss three announces. It implements the library's
// trackerServer.AnnounceTracker, so the library's HTTP tracker handler speaks BEP 3.
type peerStore struct {
	now      func() time.Time
	seedPort uint16

	mu       sync.Mutex
	torrents map[[20]byte]map[netip.AddrPort]peer
}

func newPeerStore(hashes [][20]byte, seedPort int, now func() time.Time) *peerStore {
	s := &peerStore{now: now, seedPort: uint16(seedPort), torrents: map[[20]byte]map[netip.AddrPort]peer{}}
	for _, h := range hashes {
		s.torrents[h] = map[netip.AddrPort]peer{}
	}
	return s
}

func (s *peerStore) known(h [20]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.torrents[h]
	return ok
}

func (s *peerStore) TrackAnnounce(ctx context.Context, req udp.AnnounceRequest, addr netip.AddrPort) error {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	s.mu.Lock()
	defer s.mu.Unlock()
	peers, ok := s.torrents[req.InfoHash]
	if !ok {
		return errUnknownTorrent
	}
	now := s.now()
	s.expire(peers, now)
	if req.Event == tracker.Stopped {
		delete(peers, addr)
		return nil
	}
	if addr.Port() == 0 {
		return nil // nobody can connect to it; it may still get peers
	}
	if _, had := peers[addr]; !had && len(peers) >= maxPeersPerTorrent {
		return nil
	}
	peers[addr] = peer{seen: now, left: req.Left}
	return nil
}

func (s *peerStore) expire(peers map[netip.AddrPort]peer, now time.Time) {
	for a, p := range peers {
		if now.Sub(p.seen) > 3*announceInterval {
			delete(peers, a)
		}
	}
}

// GetPeers answers an announce: the other peers of the torrent and, first, this server's own
// seed at the address the announcer reached the tracker on (the address that works for it,
// whatever interfaces the server has).
func (s *peerStore) GetPeers(ctx context.Context, h [20]byte, opts trackerServer.GetPeersOpts, remote netip.AddrPort) trackerServer.ServerAnnounceResult {
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	var res trackerServer.ServerAnnounceResult
	res.Interval = generics.Some(int32(announceInterval / time.Second))
	max := int(opts.MaxCount.UnwrapOr(50))
	if seed, ok := seedAddr(ctx, s.seedPort); ok && max > 0 {
		res.Peers = append(res.Peers, trackerServer.PeerInfo{AnnounceAddr: seed})
	}
	s.mu.Lock()
	peers, ok := s.torrents[h]
	if !ok {
		s.mu.Unlock()
		res.Err = errUnknownTorrent
		return res
	}
	s.expire(peers, s.now())
	var seeders, leechers int32 = 1, 0 // the server's seed
	others := make([]netip.AddrPort, 0, len(peers))
	for a, p := range peers {
		if p.left == 0 {
			seeders++
		} else {
			leechers++
		}
		if a != remote {
			others = append(others, a)
		}
	}
	s.mu.Unlock()
	// A random subset, so that a big line does not all crowd the first devices that came.
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	for _, a := range others {
		if len(res.Peers) >= max {
			break
		}
		res.Peers = append(res.Peers, trackerServer.PeerInfo{AnnounceAddr: a})
	}
	res.Seeders, res.Leechers = generics.Some(seeders), generics.Some(leechers)
	return res
}

// Scrape is not offered (the HTTP handler has no scrape route); it answers for completeness.
func (s *peerStore) Scrape(ctx context.Context, hashes []trackerServer.InfoHash) ([]udp.ScrapeInfohashResult, error) {
	out := make([]udp.ScrapeInfohashResult, len(hashes))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, h := range hashes {
		for _, p := range s.torrents[h] {
			if p.left == 0 {
				out[i].Seeders++
			} else {
				out[i].Leechers++
			}
		}
	}
	return out, nil
}

// counts returns how many peers (besides the server's seed) are announced for h.
func (s *peerStore) counts(h [20]byte) (seeders, leechers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	peers := s.torrents[h]
	s.expire(peers, s.now())
	for _, p := range peers {
		if p.left == 0 {
			seeders++
		} else {
			leechers++
		}
	}
	return seeders, leechers
}

// seedAddr is the server's seed as the announcing client can reach it: the local address of
// the HTTP connection the announce came on, with the seed's port.
func seedAddr(ctx context.Context, port uint16) (netip.AddrPort, bool) {
	la, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || port == 0 {
		return netip.AddrPort{}, false
	}
	tcp, ok := la.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok || ip.IsUnspecified() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), port), true
}
