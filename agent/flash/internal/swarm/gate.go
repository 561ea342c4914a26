package swarm

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/iplist"
)

// serverGate keeps this device off the server's seed while other devices can give it what
// it needs next.
//
// The library asks every peer that has a piece for it, the server's seed among them, so
// with a line of devices the seed serves a share of every device's image and its uplink is
// busy the whole time the line flashes. The seed is only needed for pieces no device has
// yet: those of the device at the front of the line, and those of a device whose peers have
// all gone. So the seed's addresses are blocked (the client's IP blocklist, checked before
// every dial and accept) while other peers can give this device the next piece it is
// missing, and let through again when they cannot (decide has the rule): the device then
// fetches from the seed what the others cannot give it. A device just behind the front
// waits for the front's next piece instead of competing with it for the seed.
type serverGate struct {
	ips   map[string]bool // the server's addresses
	quiet time.Duration
	// holders is how many other peers that are done must have the next piece for the seed
	// to stay shut: a piece only one lingering device has comes at that device's upload
	// rate, shared by all who want it, while the seed's uplink is idle.
	holders int

	// next is the first piece this device is missing from the read position on; -1 none.
	next   func() int
	closed atomic.Bool
	// lastHad is when another peer last had the next piece (the step goroutine's).
	lastHad time.Time
	// openedAt is when the gate last opened (the step goroutine's).
	openedAt time.Time

	mu    sync.Mutex
	addrs map[string]bool // the seed's listening addresses seen, to dial again on opening
	opens int             // times the gate opened again after closing
}

// defaultQuiet is how long no other peer may have the next piece before the seed is asked
// again. Many times a piece's download at a device's rate, so that a device close behind
// the front waits for it; well under the stall time, so that a device whose peers vanished
// goes to the seed long before it would go to HTTP.
const defaultQuiet = 1500 * time.Millisecond

const defaultHolders = 2

func newServerGate(ips map[string]bool, quiet time.Duration, next func() int) *serverGate {
	if quiet <= 0 {
		quiet = defaultQuiet
	}
	return &serverGate{ips: ips, quiet: quiet, holders: defaultHolders, next: next, addrs: map[string]bool{}, lastHad: time.Now()}
}

// Lookup implements iplist.Ranger: the server's addresses are blocked while the gate is
// closed.
func (g *serverGate) Lookup(ip net.IP) (iplist.Range, bool) {
	if !g.closed.Load() || !g.ips[ip.String()] {
		return iplist.Range{}, false
	}
	return iplist.Range{First: ip, Last: ip, Description: "line server's seed while other devices deliver"}, true
}

// NumRanges implements iplist.Ranger.
func (g *serverGate) NumRanges() int { return len(g.ips) }

// isServer tells whether a peer's address is one of the server's.
func (g *serverGate) isServer(addr fmt.Stringer) bool {
	host, _, err := net.SplitHostPort(addr.String())
	return err == nil && g.ips[normalIP(host)]
}

// added remembers the seed's address from a connection this device dialled (an incoming
// one comes from an ephemeral port).
func (g *serverGate) added(pc *torrent.PeerConn) {
	if pc.Discovery == torrent.PeerSourceIncoming || !g.isServer(pc.RemoteAddr) {
		return
	}
	g.mu.Lock()
	g.addrs[pc.RemoteAddr.String()] = true
	g.mu.Unlock()
}

// run opens and closes the gate until ctx ends.
func (g *serverGate) run(ctx context.Context, t *torrent.Torrent) {
	every(ctx, min(g.quiet/6, 250*time.Millisecond), func(now time.Time) { g.step(t, now) })
}

// every calls f with the time every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func(time.Time)) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			f(now)
		}
	}
}

// step shuts the gate while other peers can give this device its next piece, dropping the
// connections to the seed, and opens it when they cannot (decide), dialling the seed again.
func (g *serverGate) step(t *torrent.Torrent, now time.Time) {
	next := g.next()
	if next < 0 {
		return // nothing left to fetch
	}
	n := t.NumPieces()
	others, holders, done := 0, 0, 0
	var seed []*torrent.PeerConn
	for _, pc := range t.PeerConns() {
		if g.isServer(pc.RemoteAddr) {
			seed = append(seed, pc)
			continue
		}
		others++
		pieces := pc.PeerPieces()
		if pieces.Contains(uint32(next)) {
			holders++
			if pieces.GetCardinality() >= uint64(n) {
				done++
			}
		}
	}
	shut, open := g.decide(now, others, holders, done)
	switch {
	case shut:
		g.closed.Store(true)
		for _, pc := range seed {
			pc.Close()
		}
	case open:
		g.closed.Store(false)
		g.openedAt = now
		g.mu.Lock()
		g.opens++
		var peers []torrent.PeerInfo
		for a := range g.addrs {
			peers = append(peers, torrent.PeerInfo{Addr: torrent.StringAddr(a), Source: torrent.PeerSourceDirect})
		}
		g.mu.Unlock()
		t.AddPeers(peers)
	}
}

// decide tells step whether to shut or open the gate, from the other (non-seed) peers, how
// many of them have the next piece, and how many of those have every piece.
func (g *serverGate) decide(now time.Time, others, holders, done int) (shut, open bool) {
	// A holder still downloading is a device ahead of this one: the front of the line, or
	// close to it, and the seed's uplink is busy with it; this device waits for its pieces
	// rather than compete. Holders that are all done (lingering) mean the front has finished
	// and the seed is free: with fewer than g.holders of them, the seed helps at once.
	had := holders > 0 && (holders >= min(g.holders, others) || holders > done)
	if had {
		g.lastHad = now
	}
	starving := !had && (others == 0 || holders > 0 || now.Sub(g.lastHad) >= g.quiet)
	closed := g.closed.Load()
	// Open for at least quiet: the seed's connection is not dialled for nothing.
	return had && !closed && now.Sub(g.openedAt) >= g.quiet, starving && closed
}
