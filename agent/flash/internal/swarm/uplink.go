package swarm

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
)

// uplink orders this device's uploads: piece data goes first to the peer furthest along
// (the one holding the most pieces) among those it is sending to, and to the others in
// the gaps.
//
// The library sends to every peer that asks, so the link of a device ahead of the rest is
// shared by everyone behind it: the device just behind gets a fraction of it, falls behind,
// and the line's followers bunch up on the few pieces only the front has (measured: the
// first followers finished together 8 to 13 s after the front, at 1.6x to 2.2x one device's
// time). Served most-advanced first, each device's link streams to the one just behind it,
// which passes the pieces on in turn: a chain at the links' full rate, as devices reach the
// line one after another. The order is kept above the socket: a piece-data write waits
// while a connection to a peer further along has written piece data within gap, for at
// most maxWait, so nobody behind starves; control messages never wait.
type uplink struct {
	gap     time.Duration
	maxWait time.Duration

	mu    sync.Mutex
	ranks map[string]uint64 // remote address: the pieces that peer has
	conns map[*rankedConn]struct{}
}

// bigWrite is the least a write must carry to be piece data (a block is 16 KiB); smaller
// ones are requests, haves and keep-alives.
const bigWrite = 8 << 10

func newUplink() *uplink {
	return &uplink{
		gap:     20 * time.Millisecond,
		maxWait: 250 * time.Millisecond,
		ranks:   map[string]uint64{},
		conns:   map[*rankedConn]struct{}{},
	}
}

// rank records how many pieces each connected peer has, every tick until ctx ends.
func (u *uplink) rank(ctx context.Context, t *torrent.Torrent, d time.Duration) {
	every(ctx, d, func(time.Time) {
		ranks := map[string]uint64{}
		for _, pc := range t.PeerConns() {
			ranks[pc.RemoteAddr.String()] = pc.PeerPieces().GetCardinality()
		}
		u.mu.Lock()
		u.ranks = ranks
		u.mu.Unlock()
	})
}

// wrap puts a connection under the uplink's order.
func (u *uplink) wrap(c net.Conn) net.Conn {
	rc := &rankedConn{Conn: c, u: u, key: c.RemoteAddr().String()}
	u.mu.Lock()
	u.conns[rc] = struct{}{}
	u.mu.Unlock()
	return rc
}

// acquire returns once c may write piece data.
func (u *uplink) acquire(c *rankedConn) {
	deadline := time.Now().Add(u.maxWait)
	for {
		u.mu.Lock()
		now := time.Now()
		if !now.Before(deadline) || !u.outranked(c, now) {
			c.sending = true
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

// outranked tells whether a connection to a peer further along than c's is sending piece
// data. Called with u.mu held.
func (u *uplink) outranked(c *rankedConn, now time.Time) bool {
	r := u.ranks[c.key]
	for d := range u.conns {
		if d != c && u.ranks[d.key] > r && (d.sending || now.Sub(d.sent) < u.gap) {
			return true
		}
	}
	return false
}

func (u *uplink) release(c *rankedConn) {
	u.mu.Lock()
	c.sending = false
	c.sent = time.Now()
	u.mu.Unlock()
}

func (u *uplink) remove(c *rankedConn) {
	u.mu.Lock()
	delete(u.conns, c)
	u.mu.Unlock()
}

// rankedConn is a peer connection whose piece-data writes follow the uplink's order.
type rankedConn struct {
	net.Conn
	u   *uplink
	key string
	// Under u.mu: a piece-data write is under way, or when the last one ended.
	sending bool
	sent    time.Time
	closed  sync.Once
}

func (c *rankedConn) Write(b []byte) (int, error) {
	if len(b) < bigWrite {
		return c.Conn.Write(b)
	}
	c.u.acquire(c)
	defer c.u.release(c)
	return c.Conn.Write(b)
}

func (c *rankedConn) Close() error {
	c.closed.Do(func() { c.u.remove(c) })
	return c.Conn.Close()
}

// listener accepts peers' connections under the uplink's order.
type listener struct {
	net.Listener
	u *uplink
}

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.u.wrap(c), nil
}

// dialer connects to peers under the uplink's order.
type dialer struct {
	u *uplink
	d net.Dialer
}

func (d dialer) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return d.u.wrap(c), nil
}

func (dialer) DialerNetwork() string { return "tcp" }

// listen opens the TCP port peers connect to (0: any free one) and hands it and the
// uplink's dialer to the client.
func (u *uplink) listen(cl *torrent.Client, port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("swarm: listen for peers: %w", err)
	}
	cl.AddListener(listener{Listener: ln, u: u})
	// BitTorrent has its own keep-alives; IPv4 and IPv6 are the address's.
	cl.AddDialer(dialer{u: u, d: net.Dialer{KeepAlive: -1, FallbackDelay: -1}})
	return ln, nil
}
