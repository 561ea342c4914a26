package netup

import (
	"bytes"
	"context"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestSystemDHCPInNetns runs the real System and Client against a DHCP server on a veth pair
// inside a private network namespace (root only; nothing leaves the namespace).
func TestSystemDHCPInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	// Everything below runs on this OS thread, which is moved into a fresh namespace; sockets
	// created here stay in it whatever thread later uses them.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	defer func() {
		_ = netns.Set(orig)
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
	}()

	clientMAC := net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0x00, 0x01}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "fl-dev0", HardwareAddr: clientMAC}, PeerName: "fl-srv0"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	srv, err := netlink.LinkByName("fl-srv0")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(srv, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 99, 0, 1), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(srv); err != nil {
		t.Fatal(err)
	}

	serverIP := net.IPv4(10, 99, 0, 1).To4()
	handler := func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		var typ dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			typ = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			typ = dhcpv4.MessageTypeAck
		default:
			return
		}
		resp, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithYourIP(net.IPv4(10, 99, 0, 15)),
			dhcpv4.WithServerIP(serverIP),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
			dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
			dhcpv4.WithOption(dhcpv4.OptRouter(serverIP)),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)),
			dhcpv4.WithOption(dhcpv4.OptBootFileName("pxelinux.0")),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 99, 0, 53))),
		)
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = conn.WriteTo(resp.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
	}
	s, err := server4.NewServer("fl-srv0", &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
	if err != nil {
		t.Fatalf("DHCP server: %v", err)
	}
	defer s.Close()
	go s.Serve()

	// The resolver file must stay away from the host's /etc.
	resolv := t.TempDir() + "/resolv.conf"

	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Up(ctx, Config{
		BootIF:  clientMAC,
		Links:   System{},
		DHCP:    Client{Timeout: 2 * time.Second, ResolvConf: resolv},
		Backoff: &lineclient.Backoff{Min: 100 * time.Millisecond, Max: time.Second},
		Console: console.New(&out),
	})
	if err != nil {
		t.Fatalf("Up: %v\n%s", err, out.String())
	}
	if res.Link.Name != "fl-dev0" || res.Lease.Addr.String() != "10.99.0.15/24" || !res.Lease.Router.Equal(serverIP) || res.Lease.BootFile != "pxelinux.0" {
		t.Errorf("result %+v", res)
	}
	dev, err := netlink.LinkByName("fl-dev0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(dev, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "10.99.0.15/24" {
		t.Errorf("fl-dev0 addresses %v, %v", addrs, err)
	}
	if b, err := os.ReadFile(resolv); err != nil || string(b) != "nameserver 10.99.0.53\n" {
		t.Errorf("resolv.conf %q, %v", b, err)
	}
	routes, err := netlink.RouteList(dev, netlink.FAMILY_V4)
	gw := false
	for _, r := range routes {
		gw = gw || r.Gw.Equal(serverIP)
	}
	if err != nil || !gw {
		t.Errorf("no default route via %s: %v %v", serverIP, routes, err)
	}
	if !strings.Contains(out.String(), "DHCP on fl-dev0 52:54:00:aa:00:01") {
		t.Errorf("console:\n%s", out.String())
	}
}
