// Package netquiet lets test steps that time the network keep background downloads off it.
//
// A flash while testing streams the image while the scenario runs; a step that measures a
// link (wifi.throughput pushing to the line's sink, an iperf in an exec step) would measure
// the download instead of the device. The scenario runner holds a Gate quiet while such a
// step runs, and the flash calls Wait before each read from the network: the download
// pauses (the TCP window closes once the socket buffer is full) and resumes afterwards.
package netquiet

import (
	"context"
	"sync"
)

// Gate is open unless at least one holder keeps it quiet. The zero value is not usable:
// make one with New. A nil *Gate is always open.
type Gate struct {
	mu    sync.Mutex
	n     int
	open  chan struct{} // closed while n == 0
	waits int           // Wait calls that had to block, for tests and logs
}

// New returns an open gate.
func New() *Gate {
	g := &Gate{open: make(chan struct{})}
	close(g.open)
	return g
}

// Quiet closes the gate until the returned release is called (once; further calls do
// nothing). Holds nest: the gate opens when every holder has released.
func (g *Gate) Quiet() (release func()) {
	if g == nil {
		return func() {}
	}
	g.mu.Lock()
	if g.n == 0 {
		g.open = make(chan struct{})
	}
	g.n++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.n--
			if g.n == 0 {
				close(g.open)
			}
			g.mu.Unlock()
		})
	}
}

// Wait returns nil at once when the gate is open, otherwise when it opens, or ctx's error
// when ctx ends first.
func (g *Gate) Wait(ctx context.Context) error {
	if g == nil {
		return ctx.Err()
	}
	g.mu.Lock()
	open := g.open
	quiet := g.n > 0
	if quiet {
		g.waits++
	}
	g.mu.Unlock()
	if !quiet {
		return ctx.Err()
	}
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Quieted reports whether the gate is held quiet now.
func (g *Gate) Quieted() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n > 0
}

// Waits is how many Wait calls found the gate quiet and blocked.
func (g *Gate) Waits() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waits
}
