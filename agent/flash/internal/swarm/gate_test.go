package swarm

import (
	"testing"
	"time"
)

func TestGateDecide(t *testing.T) {
	t0 := time.Now()
	quiet := time.Second
	tests := []struct {
		name     string
		closed   bool
		openedAt time.Duration // before now; 0: long ago
		lastHad  time.Duration // before now
		others   int
		holders  int
		done     int
		wantShut bool
		wantOpen bool
	}{
		{name: "two holders shut it", others: 5, holders: 2, lastHad: time.Hour, wantShut: true},
		{name: "the only other peer holds it", others: 1, holders: 1, wantShut: true},
		{name: "one holder still downloading: wait on the front", others: 5, holders: 1, wantShut: true},
		{name: "one holder, done: the seed helps at once", closed: true, others: 5, holders: 1, done: 1, wantOpen: true},
		{name: "two holders, done: peers enough", closed: true, others: 5, holders: 2, done: 2},
		{name: "nobody holds it, not for long", closed: true, others: 5, lastHad: quiet / 2},
		{name: "nobody has held it for quiet", closed: true, others: 5, lastHad: 2 * quiet, wantOpen: true},
		{name: "no other peer", closed: true, wantOpen: true},
		{name: "just opened: stays open", openedAt: quiet / 2, others: 5, holders: 3},
		{name: "open for quiet: shuts", openedAt: 2 * quiet, others: 5, holders: 3, wantShut: true},
		{name: "already shut", closed: true, others: 5, holders: 3},
		{name: "already open", others: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newServerGate(map[string]bool{"10.0.0.1": true}, quiet, func() int { return 0 })
			g.closed.Store(tt.closed)
			g.lastHad = t0.Add(-tt.lastHad)
			if tt.openedAt > 0 {
				g.openedAt = t0.Add(-tt.openedAt)
			}
			shut, open := g.decide(t0, tt.others, tt.holders, tt.done)
			if shut != tt.wantShut || open != tt.wantOpen {
				t.Errorf("decide = shut %v, open %v; want shut %v, open %v", shut, open, tt.wantShut, tt.wantOpen)
			}
		})
	}
}
