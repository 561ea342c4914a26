package api

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/store"
)

// fakeNetboot has seen the netboot of one MAC.
type fakeNetboot struct {
	mu    sync.Mutex
	asked []string
}

const netbootMAC = "52:54:00:00:00:99"

func (f *fakeNetboot) Hello(mac net.HardwareAddr, ip netip.Addr, _ time.Time) []protocol.PhaseTiming {
	f.mu.Lock()
	f.asked = append(f.asked, mac.String()+" "+ip.String())
	f.mu.Unlock()
	if mac.String() != netbootMAC {
		return nil
	}
	return []protocol.PhaseTiming{{Phase: "tftp", DurationMS: 8700}, {Phase: "netboot_to_hello", DurationMS: 30000}}
}

// The hello stores the netboot phases the server saw, with source "server", beside the
// agent's own.
func TestHelloStoresNetbootPhases(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tt := range []struct {
		mac  string
		want string
	}{
		{netbootMAC, "[{server tftp 8700} {server netboot_to_hello 30000} {hello dhcp 1100}]"},
		{"52:54:00:00:00:98", "[{hello dhcp 1100}]"}, // booted without the server's netboot
	} {
		h := hello(tt.mac)
		h.IP = "10.77.0.100"
		resp, err := e.client.Hello(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		job, err := protocol.OpenJob(*resp.Job, e.pub)
		if err != nil {
			t.Fatal(err)
		}
		hist, err := e.store.History(ctx, job.Device.Serial, store.HistoryOptions{})
		if err != nil || len(hist) != 1 {
			t.Fatalf("%s: history %v, %d runs", tt.mac, err, len(hist))
		}
		if got := fmt.Sprint(hist[0].Timings); got != tt.want {
			t.Errorf("%s: timings %s, want %s", tt.mac, got, tt.want)
		}
	}
	e.netboot.mu.Lock()
	defer e.netboot.mu.Unlock()
	if want := "[" + netbootMAC + " 10.77.0.100 52:54:00:00:00:98 10.77.0.100]"; fmt.Sprint(e.netboot.asked) != want {
		t.Errorf("asked %v, want %s", e.netboot.asked, want)
	}
}
