package wifi

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// KernelNetwork is the Network of the running system.
type KernelNetwork struct{}

// DHCP implements Network with a DHCPv4 exchange on ifname.
func (KernelNetwork) DHCP(ctx context.Context, ifname string) (netip.Prefix, error) {
	c, err := nclient4.New(ifname, nclient4.WithRetry(3))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("DHCP client: %w", err)
	}
	defer c.Close()
	lease, err := c.Request(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	ip, ok := netip.AddrFromSlice(lease.ACK.YourIPAddr.To4())
	if !ok {
		return netip.Prefix{}, fmt.Errorf("DHCP offered %v", lease.ACK.YourIPAddr)
	}
	mask := lease.ACK.SubnetMask()
	if mask == nil {
		mask = net.CIDRMask(32, 32)
	}
	ones, _ := mask.Size()
	p := netip.PrefixFrom(ip, ones)
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return netip.Prefix{}, err
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: mask}}); err != nil {
		return netip.Prefix{}, fmt.Errorf("add %s to %s: %w", p, ifname, err)
	}
	return p, nil
}

// Dial implements Network, binding the socket to ifname.
func (KernelNetwork) Dial(ctx context.Context, ifname string, local netip.Addr, addr string) (net.Conn, error) {
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: local.AsSlice()},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	return d.DialContext(ctx, "tcp", addr)
}

// Release implements Network by removing the address.
func (KernelNetwork) Release(ifname string, p netip.Prefix) error {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	return netlink.AddrDel(link, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}})
}
