package lldp

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/flashline/flashline/protocol"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFrame(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame string
		want  protocol.LLDPNeighbor
		err   string
	}{
		{
			// A Cisco access switch: chassis by MAC, port by interface name, with the port's
			// description and the system name.
			name: "cisco ifname",
			frame: `0180c200000e 001b21aabbcc 88cc
				0207 04 001b21aabbcc
				0408 05 4769312f302f35
				0602 0078
				0807 62656e63682035
				0a08 6c696e65312d7377
				0000`,
			want: protocol.LLDPNeighbor{ChassisID: "00:1b:21:aa:bb:cc", PortID: "Gi1/0/5", PortDescription: "bench 5", SystemName: "line1-sw"},
		},
		{
			// A Juniper EX: locally assigned port id (the SNMP ifIndex as text), chassis by
			// MAC, behind an 802.1Q tag, no End TLV.
			name: "juniper local, vlan tagged",
			frame: `0180c200000e 2c6bf5112233 8100 0064 88cc
				0207 04 2c6bf5000000
				0404 07 353134
				0602 0078`,
			want: protocol.LLDPNeighbor{ChassisID: "2c:6b:f5:00:00:00", PortID: "514"},
		},
		{
			name: "port by MAC, chassis by IPv4",
			frame: `0180c200000e 020000000001 88cc
				0206 05 01 0a4d0001
				0407 03 020000000005
				0602 0014 0000`,
			want: protocol.LLDPNeighbor{ChassisID: "10.77.0.1", PortID: "02:00:00:00:00:05"},
		},
		{
			name:  "binary port id as hex",
			frame: `0180c200000e 020000000001 88cc 0207 04 020000000001 0404 02 0001ff 0602 0078 0000`,
			want:  protocol.LLDPNeighbor{ChassisID: "02:00:00:00:00:01", PortID: "0001ff"},
		},
		{name: "not lldp", frame: `0180c200000e 020000000001 0800 4500`, err: "not LLDP"},
		{name: "port first", frame: `0180c200000e 020000000001 88cc 0404 07 353134 0207 04 020000000001`, err: "chassis ID, port ID, TTL first"},
		{name: "truncated", frame: `0180c200000e 020000000001 88cc 0207 04 0200`, err: "says 7 bytes"},
		{name: "short header", frame: `0180c200`, err: "shorter than an Ethernet header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFrame(mustHex(t, tc.frame))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(mustHex(f, `0180c200000e 001b21aabbcc 88cc 0207 04 001b21aabbcc 0408 05 4769312f302f35 0602 0078 0000`))
	f.Add(mustHex(f, `0180c200000e 2c6bf5112233 8100 0064 88cc 0207 04 2c6bf5000000 0404 07 353134 0602 0078`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseFrame(b)
		if err == nil && n.PortID == "" {
			t.Fatalf("accepted a frame without a port id: %x", b)
		}
		for _, s := range []string{n.ChassisID, n.PortID, n.PortDescription, n.SystemName} {
			if strings.ContainsAny(s, "\r\n\x00") {
				t.Fatalf("control characters in %q", s)
			}
		}
	})
}
