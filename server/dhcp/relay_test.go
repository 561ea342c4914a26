package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// A request a line switch relayed with option 82: the reply echoes it, and OnReply is told
// its raw value for the station map.
func TestRelayInfoEchoedAndReported(t *testing.T) {
	srv, _ := start(t, Config{Mode: ModeProxy, NextServer: netip.MustParseAddr("10.77.0.1")})
	// Cisco's default circuit ID (VLAN 100, module 1, port 5) and remote ID (the switch's MAC).
	opt82 := []byte{1, 6, 0, 4, 0, 0x64, 1, 5, 2, 8, 0, 6, 0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc}
	req, err := dhcpv4.NewDiscovery(mac(7), pxe(iana.INTEL_X86PC)...)
	if err != nil {
		t.Fatal(err)
	}
	req.GatewayIPAddr = net.IPv4(10, 77, 1, 1)
	req.HopCount = 1
	req.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, opt82))
	// Through the wire format, as the server receives it.
	req, err = dhcpv4.FromBytes(req.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	resp := srv.respond(req, false)
	if resp == nil {
		t.Fatal("no answer to a relayed PXE discover")
	}
	echoRelayInfo(req, resp)
	if got := resp.Options.Get(dhcpv4.OptionRelayAgentInformation); !bytes.Equal(got, opt82) {
		t.Errorf("reply's option 82 %x, want the request's %x", got, opt82)
	}
	if ri := replyInfo(req, resp).RelayInfo; !bytes.Equal(ri, opt82) {
		t.Errorf("Reply.RelayInfo %x, want %x", ri, opt82)
	}
	plain, _ := dhcpv4.NewDiscovery(mac(8), pxe(iana.INTEL_X86PC)...)
	if ri := replyInfo(plain, srv.respond(plain, false)).RelayInfo; ri != nil {
		t.Errorf("RelayInfo %x without a relay", ri)
	}
}
