package journey

import (
	"context"
	"time"

	"github.com/flashline/flashline/protocol"
)

// DefaultLLDPWait bounds how long the hello waits, from the journey's start, for an LLDP
// frame on the boot NIC. Line switches are usually set to send every few seconds; the
// inventory takes about that long anyway, so a device on such a switch loses nothing, and one
// on a switch that sends every 30 s (or not at all) is placed by DHCP or the config instead.
const DefaultLLDPWait = 5 * time.Second

// Heartbeater is implemented by API clients that can send heartbeats (*lineclient.Client).
type Heartbeater interface {
	Heartbeat(ctx context.Context, hb protocol.Heartbeat) error
}

// listenLLDP starts listening for the boot NIC's LLDP neighbour; the returned function waits
// for it until the deadline and returns it, or nil.
func listenLLDP(ctx context.Context, env Env, deps Deps) func() *protocol.LLDPNeighbor {
	if deps.LLDP == nil {
		return func() *protocol.LLDPNeighbor { return nil }
	}
	wait := env.LLDPWait
	if wait == 0 {
		wait = DefaultLLDPWait
	}
	lctx, cancel := context.WithTimeout(ctx, wait)
	c := make(chan *protocol.LLDPNeighbor, 1)
	go func() {
		nb, err := deps.LLDP(lctx)
		if err != nil {
			env.Log.Debug("no LLDP heard on the boot NIC", "err", err)
			c <- nil
			return
		}
		c <- &nb
	}()
	return func() *protocol.LLDPNeighbor {
		defer cancel()
		nb := <-c
		if nb != nil {
			env.Console.Infof("lldp: switch %s port %s", nb.SystemName, nb.PortID)
		}
		return nb
	}
}

// heartbeats sends a heartbeat every interval the server asked for until the returned stop
// is called. Failures are logged only: heartbeats are advisory, the events and the result
// are what count.
func heartbeats(ctx context.Context, env Env, api API, resp *protocol.HelloResponse, job protocol.Job) (stop func()) {
	hb, ok := api.(Heartbeater)
	if !ok || resp.HeartbeatSeconds <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Duration(resp.HeartbeatSeconds) * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
				if err := hb.Heartbeat(hctx, protocol.Heartbeat{RunID: job.RunID, Serial: job.Device.Serial, Time: env.Now(), Secret: resp.RunSecret}); err != nil {
					env.Log.Debug("heartbeat not delivered", "err", err)
				}
				hcancel()
			}
		}
	}()
	return func() { cancel(); <-done }
}
