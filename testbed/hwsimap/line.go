package hwsimap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/flashline/flashline/protocol/sink"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	vnl "github.com/vishvananda/netlink"
)

// LineConfig describes the line network behind the AP: the AP's address,
// a DHCP server handing out addresses of its subnet, and a TCP sink.
type LineConfig struct {
	AP Config
	// Address is the AP's address in CIDR form, e.g. 192.168.77.1/24.
	Address string
	// SinkPort is the TCP sink's port on Address (0: no sink).
	SinkPort int
	Logger   *slog.Logger
}

// Line is a running line network.
type Line struct {
	AP *AP
}

// RunLine starts the AP, its address, DHCP and the sink, calls ready, and
// serves until ctx ends. It is meant to run in a network namespace of its
// own holding the AP radio.
func RunLine(ctx context.Context, cfg LineConfig, ready func(*Line)) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ip, subnet, err := net.ParseCIDR(cfg.Address)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("line address %q: want an IPv4 CIDR", cfg.Address)
	}
	if lo, err := vnl.LinkByName("lo"); err == nil {
		_ = vnl.LinkSetUp(lo)
	}
	ctl, frames, err := Dial()
	if err != nil {
		return err
	}
	ap, err := Start(ctx, ctl, frames, KernelLinks{}, cfg.AP)
	if err != nil {
		ctl.Close()
		frames.Close()
		return err
	}
	defer ap.Close()
	link, err := vnl.LinkByIndex(ap.ifi.Index)
	if err != nil {
		return fmt.Errorf("line: %s: %w", ap.ifi.Name, err)
	}
	if err := vnl.AddrReplace(link, &vnl.Addr{IPNet: &net.IPNet{IP: ip, Mask: subnet.Mask}}); err != nil {
		return fmt.Errorf("line: address %s on %s: %w", cfg.Address, ap.ifi.Name, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("line %s: %w", name, err)
				cancel()
			}
		}()
	}
	run("AP", func() error { return ap.Serve(ctx) })
	if !cfg.AP.NoAssociation {
		leases := &leases{server: ip.To4(), mask: subnet.Mask, byMAC: map[string]net.IP{}}
		srv, err := server4.NewServer(ap.ifi.Name, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, leases.handle(log))
		if err != nil {
			return fmt.Errorf("line: DHCP server on %s: %w", ap.ifi.Name, err)
		}
		context.AfterFunc(ctx, func() { srv.Close() })
		run("DHCP", srv.Serve)
		if cfg.SinkPort != 0 {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(cfg.SinkPort)))
			if err != nil {
				return fmt.Errorf("line: sink: %w", err)
			}
			run("sink", func() error { return sink.Serve(ctx, ln, 2*time.Minute, log) })
		}
	}
	if ready != nil {
		ready(&Line{AP: ap})
	}
	<-ctx.Done()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// leases is a tiny DHCP server state: one address per MAC from .100 up.
type leases struct {
	server net.IP
	mask   net.IPMask
	mu     sync.Mutex
	byMAC  map[string]net.IP
}

func (l *leases) lease(mac net.HardwareAddr) (net.IP, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ip, ok := l.byMAC[mac.String()]; ok {
		return ip, nil
	}
	n := len(l.byMAC)
	if n >= 100 {
		return nil, errors.New("address pool exhausted")
	}
	base := binary.BigEndian.Uint32(l.server.Mask(l.mask).To4())
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, base+100+uint32(n))
	l.byMAC[mac.String()] = ip
	return ip, nil
}

func (l *leases) handle(log *slog.Logger) server4.Handler {
	return func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		var typ dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			typ = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			typ = dhcpv4.MessageTypeAck
		default:
			return
		}
		ip, err := l.lease(m.ClientHWAddr)
		if err != nil {
			log.Warn("line DHCP", "client", m.ClientHWAddr.String(), "err", err)
			return
		}
		resp, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithYourIP(ip),
			dhcpv4.WithServerIP(l.server),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(l.server)),
			dhcpv4.WithNetmask(l.mask),
			dhcpv4.WithLeaseTime(3600),
		)
		if err != nil {
			log.Warn("line DHCP reply", "err", err)
			return
		}
		// The client has no address yet: broadcast on the AP's link.
		if _, err := conn.WriteTo(resp.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}); err != nil {
			log.Warn("line DHCP send", "err", err)
			return
		}
		log.Info("line DHCP", "type", typ, "client", m.ClientHWAddr.String(), "ip", ip)
	}
}
