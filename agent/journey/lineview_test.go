package journey

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
)

// hbAPI is fakeAPI that asks for heartbeats and counts them.
type hbAPI struct {
	*fakeAPI
	mu    sync.Mutex
	hello protocol.Hello
	beats []protocol.Heartbeat
}

func (h *hbAPI) Hello(ctx context.Context, hello protocol.Hello) (*protocol.HelloResponse, error) {
	h.mu.Lock()
	h.hello = hello
	h.mu.Unlock()
	resp, err := h.fakeAPI.Hello(ctx, hello)
	if resp != nil && hello.Heartbeat {
		resp.HeartbeatSeconds = 1
	}
	return resp, err
}

func (h *hbAPI) Heartbeat(ctx context.Context, hb protocol.Heartbeat) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hb.Secret != fakeSecret {
		return errors.New("no run secret")
	}
	h.beats = append(h.beats, hb)
	return nil
}

// The hello carries the LLDP heard and says the agent sends heartbeats; during a long step
// the agent does, and stops once the run is reported.
func TestHeartbeatsAndLLDP(t *testing.T) {
	api := &hbAPI{fakeAPI: newFake()}
	rec := &recorder{}
	d := deps(rec, []protocol.StepResult{{Name: "Power button", Status: protocol.StatusPass}}, nil, nil)
	run := d.RunScenario
	d.RunScenario = func(ctx context.Context, sc []byte, inv protocol.Inventory, emit func(protocol.Event)) ([]protocol.StepResult, error) {
		time.Sleep(2500 * time.Millisecond) // an operator taking their time
		return run(ctx, sc, inv, emit)
	}
	d.LLDP = func(ctx context.Context) (protocol.LLDPNeighbor, error) {
		return protocol.LLDPNeighbor{PortID: "Gi1/0/3", SystemName: "line1-sw"}, nil
	}
	var out bytes.Buffer
	if _, err := Run(context.Background(), testEnv(&out), api, d); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if !api.hello.Heartbeat || api.hello.LLDP == nil || api.hello.LLDP.PortID != "Gi1/0/3" {
		t.Errorf("hello %+v", api.hello)
	}
	if n := len(api.beats); n < 2 || n > 4 {
		t.Errorf("%d heartbeats during a 2.5 s step at 1/s", n)
	}
	n := len(api.beats)
	api.mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	api.mu.Lock()
	if len(api.beats) != n {
		t.Error("heartbeats went on after the run was reported")
	}
}

// No LLDP within the wait: the hello goes without it, not later.
func TestNoLLDP(t *testing.T) {
	api := &hbAPI{fakeAPI: newFake()}
	d := deps(&recorder{}, nil, nil, nil)
	d.LLDP = func(ctx context.Context) (protocol.LLDPNeighbor, error) {
		<-ctx.Done()
		return protocol.LLDPNeighbor{}, ctx.Err()
	}
	env := testEnv(&bytes.Buffer{})
	env.LLDPWait = 100 * time.Millisecond
	start := time.Now()
	if _, err := Run(context.Background(), env, api, d); err != nil {
		t.Fatal(err)
	}
	if api.hello.LLDP != nil || time.Since(start) > 3*time.Second {
		t.Errorf("hello %+v after %v", api.hello.LLDP, time.Since(start))
	}
}
