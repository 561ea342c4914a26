package swarm

import (
	"io"
	"net"
	"testing"
	"time"
)

// pipeConn is one end of a net.Pipe whose other end is drained, with a chosen remote
// address (the uplink ranks connections by it).
type pipeConn struct {
	net.Conn
	remote string
}

func (c pipeConn) RemoteAddr() net.Addr { return fakeAddr(c.remote) }

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

func drainedConn(t *testing.T, remote string) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	go io.Copy(io.Discard, b)
	t.Cleanup(func() { a.Close(); b.Close() })
	return pipeConn{Conn: a, remote: remote}
}

func TestUplinkOutranked(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name       string
		ahead      uint64 // pieces of the other connection's peer
		behind     uint64 // pieces of the writing connection's peer
		sending    bool   // the other connection is writing piece data now
		sentAgo    time.Duration
		wantWaits  bool
		otherEmpty bool // the other connection has never sent
	}{
		{name: "peer further along sending", ahead: 50, behind: 10, sending: true, wantWaits: true},
		{name: "peer further along sent just now", ahead: 50, behind: 10, sentAgo: 5 * time.Millisecond, wantWaits: true},
		{name: "peer further along idle", ahead: 50, behind: 10, sentAgo: time.Second, wantWaits: false},
		{name: "peer further along never sent", ahead: 50, behind: 10, otherEmpty: true, wantWaits: false},
		{name: "peer behind sending", ahead: 5, behind: 10, sending: true, wantWaits: false},
		{name: "peers level", ahead: 10, behind: 10, sending: true, wantWaits: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUplink()
			other := u.wrap(drainedConn(t, "10.0.0.2:6881")).(*rankedConn)
			me := u.wrap(drainedConn(t, "10.0.0.3:6881")).(*rankedConn)
			u.ranks = map[string]uint64{other.key: tt.ahead, me.key: tt.behind}
			other.sending = tt.sending
			if !tt.otherEmpty && !tt.sending {
				other.sent = now.Add(-tt.sentAgo)
			}
			if got := u.outranked(me, now); got != tt.wantWaits {
				t.Errorf("outranked = %v, want %v", got, tt.wantWaits)
			}
		})
	}
}

// TestUplinkOrdersPieceData: while a connection to a peer further along sends piece data,
// piece data to a peer behind waits (for at most maxWait) and control messages do not.
func TestUplinkOrdersPieceData(t *testing.T) {
	u := newUplink()
	u.maxWait = 400 * time.Millisecond
	front := u.wrap(drainedConn(t, "10.0.0.2:6881")).(*rankedConn)
	back := u.wrap(drainedConn(t, "10.0.0.3:6881"))
	u.ranks = map[string]uint64{"10.0.0.2:6881": 90, "10.0.0.3:6881": 10}

	u.acquire(front) // a piece-data write to the peer further along is under way
	start := time.Now()
	if _, err := back.Write(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("a control message waited %v", d)
	}

	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(150 * time.Millisecond)
		released <- time.Now()
		u.release(front)
	}()
	if _, err := back.Write(make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	at := <-released
	if done.Before(at.Add(u.gap)) {
		t.Errorf("piece data to the peer behind went %v after the front's write ended, want at least the gap %v", done.Sub(at), u.gap)
	}

	// Starved for good, it still goes after maxWait.
	u.acquire(front)
	defer u.release(front)
	start = time.Now()
	if _, err := back.Write(make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < u.maxWait || d > u.maxWait+300*time.Millisecond {
		t.Errorf("piece data behind a busy front went after %v, want about maxWait %v", d, u.maxWait)
	}
}

// TestUplinkForgetsClosed: a closed connection no longer holds others back.
func TestUplinkForgetsClosed(t *testing.T) {
	u := newUplink()
	front := u.wrap(drainedConn(t, "10.0.0.2:6881")).(*rankedConn)
	back := u.wrap(drainedConn(t, "10.0.0.3:6881")).(*rankedConn)
	u.ranks = map[string]uint64{front.key: 90, back.key: 10}
	u.acquire(front)
	front.Close()
	front.Close() // twice is harmless
	if u.outranked(back, time.Now()) {
		t.Error("a closed connection still outranks")
	}
}
