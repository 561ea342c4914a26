package netlab

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/lldp"
	"github.com/flashline/flashline/protocol"
)

func TestLLDPFrame(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x4c, 0x49, 0x4e, 0x45, 0x01}
	for _, tc := range []struct {
		name string
		port LLDPPort
		want protocol.LLDPNeighbor
		err  string
	}{
		{
			name: "full",
			port: LLDPPort{ChassisMAC: mac, SystemName: "line1-sw", PortID: "port 7", PortDescription: "bench 7"},
			want: protocol.LLDPNeighbor{ChassisID: "02:4c:49:4e:45:01", PortID: "port 7", PortDescription: "bench 7", SystemName: "line1-sw"},
		},
		{
			name: "mandatory TLVs only",
			port: LLDPPort{ChassisMAC: mac, PortID: "Gi1/0/5", TTL: 20 * time.Second},
			want: protocol.LLDPNeighbor{ChassisID: "02:4c:49:4e:45:01", PortID: "Gi1/0/5"},
		},
		{name: "no port", port: LLDPPort{ChassisMAC: mac}, err: "port ID is required"},
		{name: "no chassis", port: LLDPPort{PortID: "port 7"}, err: "chassis MAC"},
		{name: "port too long", port: LLDPPort{ChassisMAC: mac, PortID: strings.Repeat("x", 600)}, err: "at most 511"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.port.Frame()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Frame() error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The agent's own parser reads it as the switch meant it.
			got, err := lldp.ParseFrame(f)
			if err != nil {
				t.Fatalf("agent/lldp cannot parse the frame % x: %v", f, err)
			}
			if got != tc.want {
				t.Fatalf("parsed %+v, want %+v", got, tc.want)
			}
			if !strings.HasPrefix(net.HardwareAddr(f[:6]).String(), "01:80:c2:00:00:0e") {
				t.Fatalf("destination %s, want the nearest-bridge address", net.HardwareAddr(f[:6]))
			}
		})
	}
}

// TestAnnounceLLDPHeard: frames announced inside a lab namespace on its veth end are heard by
// the agent's listener on the host end, as the agent hears its switch port.
func TestAnnounceLLDPHeard(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("netlab needs root to create network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := New(ctx, Config{NS: "flashline-lldp-test", Veth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sender := l.Command(ctx, os.Args[0], "-test.run", "^TestHelperAnnounceLLDP$")
	sender.Env = append(os.Environ(), "NETLAB_LLDP_IF=flns0")
	if err := sender.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sender.Process.Kill(); _ = sender.Wait() }()
	nb, err := lldp.Listen(ctx, l.hostVeth)
	if err != nil {
		t.Fatalf("no LLDP heard on %s: %v", l.hostVeth, err)
	}
	want := protocol.LLDPNeighbor{ChassisID: "02:4c:49:4e:45:01", PortID: "port 7", PortDescription: "bench 7", SystemName: "line1-sw"}
	if nb != want {
		t.Fatalf("heard %+v, want %+v", nb, want)
	}
}

// TestHelperAnnounceLLDP is not a test: it is the switch port TestAnnounceLLDPHeard runs inside
// the namespace.
func TestHelperAnnounceLLDP(t *testing.T) {
	ifname := os.Getenv("NETLAB_LLDP_IF")
	if ifname == "" {
		t.Skip("helper process only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop, err := AnnounceLLDP(ctx, ifname, LLDPPort{ChassisMAC: net.HardwareAddr{0x02, 0x4c, 0x49, 0x4e, 0x45, 0x01},
		SystemName: "line1-sw", PortID: "port 7", PortDescription: "bench 7"}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	stop()
}
