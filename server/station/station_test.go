package station

import (
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// relayedDiscover is a DHCPDISCOVER as a line switch relays it (giaddr set, hops 1) with the
// relay agent information it adds.
func relayedDiscover(t *testing.T, opt82 []byte) []byte {
	t.Helper()
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	d, err := dhcpv4.NewDiscovery(mac, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")))
	if err != nil {
		t.Fatal(err)
	}
	d.HopCount = 1
	d.GatewayIPAddr = net.IPv4(10, 77, 1, 1)
	d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, opt82))
	return d.ToBytes()
}

func TestParseRelayInfo(t *testing.T) {
	for _, tc := range []struct {
		name, opt82 string
		want        Relay
		err         string
	}{
		// Cisco IOS snooping default: circuit ID = type 0, length 4, VLAN 100, module 1,
		// port 5; remote ID = type 0, length 6, the switch's MAC.
		{name: "cisco default", opt82: "01 06 0004 0064 01 05   02 08 0006 001b21aabbcc",
			want: Relay{CircuitID: "000400640105", RemoteID: "0006001b21aabbcc"}},
		// "information option format-type circuit-id string": the port as text.
		{name: "text circuit", opt82: "01 07 4769312f302f35  02 08 6c696e65312d7377",
			want: Relay{CircuitID: "Gi1/0/5", RemoteID: "line1-sw"}},
		{name: "remote only", opt82: "02 05 736c6f7433", want: Relay{RemoteID: "slot3"}},
		{name: "unknown sub-options kept out", opt82: "05 04 0a4d0101 01 02 6135", want: Relay{CircuitID: "a5"}},
		{name: "truncated", opt82: "01 09 4769", err: "says 9 bytes"},
		{name: "nothing useful", opt82: "05 04 0a4d0101", err: "neither circuit ID nor remote ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Through the whole relayed packet, as the DHCP server receives it.
			pkt, err := dhcpv4.FromBytes(relayedDiscover(t, unhex(t, tc.opt82)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseRelayInfo(pkt.Options.Get(dhcpv4.OptionRelayAgentInformation))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func FuzzParseRelayInfo(f *testing.F) {
	f.Add(unhex(f, "01 06 0004 0064 01 05 02 08 0006 001b21aabbcc"))
	f.Add(unhex(f, "01 07 4769312f302f35"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRelayInfo(b)
		if err == nil && r.CircuitID == "" && r.RemoteID == "" {
			t.Fatal("accepted without IDs")
		}
		if strings.ContainsAny(r.CircuitID+r.RemoteID, "\r\n\x00") {
			t.Fatalf("control characters in %+v", r)
		}
	})
}

func TestResolveOrder(t *testing.T) {
	m := NewMap([]config.Station{
		{Name: "bench-1", CircuitID: "000400640101"},
		{Name: "bench-2", CircuitID: "Gi1/0/2", RemoteID: "line1-sw"},
		{Name: "bench-3", LLDPPort: "Gi1/0/3", LLDPChassis: "line1-sw"},
		{Name: "bench-4", LLDPPort: "ge-0/0/4"},
		{Name: "rework", MACs: []string{"52-54-00-00-00-99"}, Serials: []string{"RW-*"}},
	})
	lldp3 := &protocol.LLDPNeighbor{ChassisID: "00:1b:21:aa:bb:cc", PortID: "Gi1/0/3", SystemName: "line1-sw"}
	for _, tc := range []struct {
		name        string
		relay       *Relay
		lldp        *protocol.LLDPNeighbor
		mac, serial string
		want        Match
	}{
		{"relay hex", &Relay{CircuitID: "000400640101"}, nil, "52:54:00:00:00:01", "S", Match{"bench-1", SourceRelay, "circuit 000400640101"}},
		{"relay both ids, any case", &Relay{CircuitID: "gi1/0/2", RemoteID: "LINE1-SW"}, nil, "52:54:00:00:00:01", "S", Match{"bench-2", SourceRelay, "circuit gi1/0/2 remote LINE1-SW"}},
		{"relay wins over lldp", &Relay{CircuitID: "000400640101"}, lldp3, "52:54:00:00:00:01", "S", Match{"bench-1", SourceRelay, "circuit 000400640101"}},
		{"unmapped relay falls to lldp", &Relay{CircuitID: "ffff"}, lldp3, "52:54:00:00:00:01", "S", Match{"bench-3", SourceLLDP, "lldp line1-sw Gi1/0/3"}},
		{"lldp other switch", nil, &protocol.LLDPNeighbor{PortID: "Gi1/0/3", SystemName: "line2-sw"}, "52:54:00:00:00:01", "S", Match{Port: "lldp line2-sw Gi1/0/3"}},
		{"lldp by description", nil, &protocol.LLDPNeighbor{PortID: "514", PortDescription: "ge-0/0/4"}, "52:54:00:00:00:01", "S", Match{"bench-4", SourceLLDP, "lldp 514"}},
		{"config mac", nil, nil, "52:54:00:00:00:99", "S", Match{"rework", SourceConfig, ""}},
		{"config serial glob", nil, nil, "52:54:00:00:00:01", "RW-17", Match{"rework", SourceConfig, ""}},
		{"unplaced but seen", &Relay{CircuitID: "ffff"}, nil, "52:54:00:00:00:01", "S", Match{Port: "circuit ffff"}},
		{"nothing", nil, nil, "52:54:00:00:00:01", "S", Match{}},
	} {
		if got := m.Resolve(tc.relay, tc.lldp, tc.mac, tc.serial); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestSeenBounded(t *testing.T) {
	s := NewSeen(2, time.Hour)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	macs := []string{"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"}
	for i, m := range macs {
		hw, _ := net.ParseMAC(m)
		now = now.Add(time.Second)
		s.Record(hw, Relay{CircuitID: string(rune('a' + i))})
	}
	hw1, _ := net.ParseMAC(macs[0])
	hw3, _ := net.ParseMAC(macs[2])
	if _, ok := s.Lookup(hw1); ok {
		t.Error("the oldest MAC was kept beyond the bound")
	}
	if r, ok := s.Lookup(hw3); !ok || r.CircuitID != "c" {
		t.Errorf("newest: %+v %v", r, ok)
	}
	now = now.Add(2 * time.Hour)
	if _, ok := s.Lookup(hw3); ok {
		t.Error("relay information kept past its ttl")
	}
	res := &Resolver{Map: NewMap([]config.Station{{Name: "b", CircuitID: "c"}}), Seen: s}
	now = now.Add(-2 * time.Hour)
	if got := res.ForMAC(hw3); got != "b" {
		t.Errorf("ForMAC %q", got)
	}
}
