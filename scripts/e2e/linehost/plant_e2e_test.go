//go:build e2e

package linehost

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netns"
)

// plantDHCP is the plant's DHCP server of the proxy setup: it hands out addresses and knows
// nothing of PXE (no next-server, no boot file), so a device can only netboot if the line
// host's proxyDHCP answers it.
type plantDHCP struct {
	srv  *server4.Server
	self net.IP
	mu   sync.Mutex
	// leases by MAC; next is the last octet of the next address handed out.
	leases map[string]net.IP
	next   byte
	log    func(format string, args ...any)
}

// startPlantDHCP listens on port 67 of ifname inside the named network namespace (the socket
// stays there when the thread goes back) and serves 10.77.0.50 upwards on 10.77.0.0/24.
func startPlantDHCP(ns, ifname string, self net.IP, log func(string, ...any)) (*plantDHCP, error) {
	p := &plantDHCP{self: self, leases: map[string]net.IP{}, next: 50, log: log}
	errc := make(chan error, 1)
	go func() {
		// The thread changes namespace: lock it, and let it die with the goroutine rather
		// than go back to the pool in the wrong namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("plant DHCP: namespace %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("plant DHCP: enter %s: %w", ns, err)
			return
		}
		p.srv, err = server4.NewServer(ifname, &net.UDPAddr{Port: dhcpv4.ServerPort}, p.handle)
		errc <- err
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("plant DHCP: %w", err)
	}
	go p.srv.Serve()
	return p, nil
}

func (p *plantDHCP) Close() { p.srv.Close() }

func (p *plantDHCP) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	var typ dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(p.self) {
			return // the client chose another server
		}
		typ = dhcpv4.MessageTypeAck
	default:
		return
	}
	p.mu.Lock()
	ip, ok := p.leases[m.ClientHWAddr.String()]
	if !ok {
		ip = net.IPv4(10, 77, 0, p.next)
		p.next++
		p.leases[m.ClientHWAddr.String()] = ip
	}
	p.mu.Unlock()
	reply, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(ip),
		dhcpv4.WithServerIP(net.IPv4zero), // no next-server: the plant's server knows no PXE
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(p.self)),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)),
	)
	if err != nil {
		p.log("plant DHCP: reply to %s: %v", m.ClientHWAddr, err)
		return
	}
	if _, err := conn.WriteTo(reply.ToBytes(), peer); err != nil {
		p.log("plant DHCP: send to %s: %v", peer, err)
		return
	}
	p.log("plant DHCP: %s %s -> %s", typ, m.ClientHWAddr, ip)
}
