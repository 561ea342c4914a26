package netup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// System is the real Links: the kernel's interfaces over netlink.
type System struct{}

// List returns every interface.
func (System) List(ctx context.Context) ([]Link, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]Link, 0, len(ls))
	for _, l := range ls {
		a := l.Attrs()
		out = append(out, Link{
			Name:    a.Name,
			MAC:     a.HardwareAddr,
			Up:      a.Flags&net.FlagUp != 0,
			Carrier: a.RawFlags&unix.IFF_LOWER_UP != 0 || a.OperState == netlink.OperUp,
		})
	}
	return out, nil
}

// SetUp raises an interface.
func (System) SetUp(ctx context.Context, name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// Client is the real DHCP: insomniacslk's nclient4 on a raw socket, then netlink to apply the
// address and routes, and the resolver file.
type Client struct {
	// ResolvConf is where the DNS servers are written; empty means /etc/resolv.conf.
	ResolvConf string
	// Timeout is how long to wait for each answer; zero means 3s.
	Timeout time.Duration
	// Retries is how many times nclient4 resends within one attempt; zero means 2.
	Retries int
	// VendorClass is sent as option 60 so that a line's DHCP server can recognise agents.
	VendorClass string
}

// Lease runs one DHCP exchange on l and configures l with the answer.
func (c Client) Lease(ctx context.Context, l Link) (*Lease, error) {
	timeout, retries := c.Timeout, c.Retries
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	if retries == 0 {
		retries = 2
	}
	vc := c.VendorClass
	if vc == "" {
		vc = "flashline-agent"
	}
	cl, err := nclient4.New(l.Name, nclient4.WithTimeout(timeout), nclient4.WithRetry(retries), nclient4.WithHWAddr(l.MAC))
	if err != nil {
		return nil, fmt.Errorf("open DHCP socket on %s: %w", l.Name, err)
	}
	defer cl.Close()
	lease, err := cl.Request(ctx,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vc)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionDomainName, dhcpv4.OptionClasslessStaticRoute, dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName),
	)
	if err != nil {
		if errors.Is(err, nclient4.ErrNoResponse) || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no DHCP answer within %s x%d", timeout, retries)
		}
		return nil, err
	}
	ack := lease.ACK
	nl, err := netlink.LinkByName(l.Name)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", l.Name, err)
	}
	if err := c.configure(nl, ack); err != nil {
		return nil, fmt.Errorf("configure %s with %s: %w", l.Name, ack.YourIPAddr, err)
	}
	out := &Lease{
		Addr:       net.IPNet{IP: ack.YourIPAddr, Mask: ack.SubnetMask()},
		DNS:        ack.DNS(),
		ServerID:   ack.ServerIdentifier(),
		NextServer: ack.ServerIPAddr,
		BootFile:   ack.BootFileNameOption(),
		TFTPServer: ack.TFTPServerName(),
	}
	if out.BootFile == "" {
		out.BootFile = ack.BootFileName
	}
	if r := ack.Router(); len(r) > 0 {
		out.Router = r[0]
	}
	if out.Addr.Mask == nil {
		out.Addr.Mask = out.Addr.IP.DefaultMask()
	}
	return out, nil
}

// configure applies an ACK: the address, the routes (classless static routes win over the
// router option, RFC 3442) and the DNS servers.
func (c Client) configure(link netlink.Link, ack *dhcpv4.DHCPv4) error {
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ack.YourIPAddr, Mask: mask}}
	if lt := ack.IPAddressLeaseTime(0); lt > 0 {
		// The agent never renews: a device is provisioned in minutes, far within any lease.
		addr.ValidLft = int(lt.Seconds())
		addr.PreferedLft = int(lt.Seconds())
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("add address %s: %w", addr.IPNet, err)
	}
	idx := link.Attrs().Index
	if routes := ack.ClasslessStaticRoute(); len(routes) > 0 {
		for _, r := range routes {
			nr := &netlink.Route{LinkIndex: idx, Dst: r.Dest, Gw: r.Router}
			if r.Router == nil || r.Router.Equal(net.IPv4zero) {
				nr.Gw, nr.Scope = nil, netlink.SCOPE_LINK
			}
			if err := netlink.RouteReplace(nr); err != nil {
				return fmt.Errorf("add route %s via %s: %w", r.Dest, r.Router, err)
			}
		}
	} else if gw := ack.Router(); len(gw) > 0 {
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: idx, Gw: gw[0]}); err != nil {
			return fmt.Errorf("add default route via %s: %w", gw[0], err)
		}
	}
	var rc strings.Builder
	if d := ack.DomainName(); d != "" {
		fmt.Fprintf(&rc, "domain %s\n", d)
	}
	for _, ns := range ack.DNS() {
		fmt.Fprintf(&rc, "nameserver %s\n", ns)
	}
	if sl := ack.DomainSearch(); sl != nil && len(sl.Labels) > 0 {
		fmt.Fprintf(&rc, "search %s\n", strings.Join(sl.Labels, " "))
	}
	if rc.Len() == 0 {
		return nil // keep whatever the initramfs has
	}
	path := c.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(rc.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
