// Package netbootclock times the part of a device's journey that only the line server sees:
// the firmware's PXE DHCP exchange, the TFTP downloads, and the wait from the last download to
// the agent's hello (kernel boot and agent start). The DHCP and TFTP servers report what they
// sent; at the hello the phases of that device's netboot are handed over, to be stored with
// the run.
//
// TFTP knows a client only by its IP address. The address is tied to a MAC by the DHCP
// replies (the address offered in full mode, the client's own on proxyDHCP requests to port
// 4011) and by pxelinux's request for "pxelinux.cfg/01-<mac>", which names it. Downloads from
// an address not yet tied to a MAC are kept under the address until it is.
//
// Memory is bounded: at most [Config.MaxDevices] netboots and as many address bindings are
// kept, the least recently active going first; a netboot idle for longer than [Config.MaxAge]
// is forgotten.
package netbootclock

import (
	"net"
	"net/netip"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/pxecfg"
)

// Phase names, as stored with source "server".
const (
	// PhasePXEDHCP runs from the first offer to a PXE client to the last acknowledgement
	// before its first TFTP request: the firmware's DHCP exchange, including its wait for
	// more offers.
	PhasePXEDHCP = "pxe_dhcp"
	// PhaseTFTP runs from the first TFTP request (pxelinux.0) to the end of the last TFTP
	// transfer before the hello, normally the initrd.
	PhaseTFTP = "tftp"
	// PhaseTFTPKernel and PhaseTFTPInitrd are the kernel's and the initrd's own transfers.
	PhaseTFTPKernel = "tftp_kernel"
	PhaseTFTPInitrd = "tftp_initrd"
	// PhaseNetbootToHello runs from the end of the last TFTP transfer to the agent's hello:
	// kernel boot and agent start (and the kernel and initrd downloads when pxelinux fetches
	// them over HTTP).
	PhaseNetbootToHello = "netboot_to_hello"
)

// Config says what to look for. The zero value works, without the kernel and initrd phases.
type Config struct {
	// Kernel and Initrd are the TFTP names of the provisioning kernel and initrd, relative
	// to the TFTP root as in the pxelinux configuration (a leading "/" is ignored).
	Kernel, Initrd string
	// MaxDevices bounds the netboots and address bindings kept. Default 4096.
	MaxDevices int
	// MaxAge: a netboot with no news for this long is forgotten, and the next DHCP or TFTP
	// event of that device starts a new one. Default 15 minutes, far more than a kernel
	// and agent take to start.
	MaxAge time.Duration
}

// boot is what was seen of one netboot.
type boot struct {
	dhcpFirst, dhcpAck time.Time // first PXE reply; last PXE ack before any TFTP
	tftpFirst, tftpEnd time.Time // first request; end of the last completed transfer
	kernel, initrd     time.Duration
	last               time.Time // latest news, for ageing and eviction
}

type binding struct {
	mac  string
	last time.Time
}

// Clock collects the netboot events of every device. Its methods are safe for concurrent use.
type Clock struct {
	cfg    Config
	mu     sync.Mutex
	byMAC  map[string]*boot
	byIP   map[netip.Addr]*boot // downloads from addresses not yet tied to a MAC
	ipMAC  map[netip.Addr]binding
	kernel string
	initrd string
}

// New returns an empty Clock.
func New(cfg Config) *Clock {
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = 4096
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 15 * time.Minute
	}
	return &Clock{cfg: cfg, byMAC: map[string]*boot{}, byIP: map[netip.Addr]*boot{}, ipMAC: map[netip.Addr]binding{},
		kernel: strings.TrimLeft(cfg.Kernel, "/"), initrd: strings.TrimLeft(cfg.Initrd, "/")}
}

// DHCPReply records a reply the DHCP server sent at t. Only replies to PXE firmware count;
// ip, when valid, is the client's address.
func (c *Clock) DHCPReply(mac net.HardwareAddr, ip netip.Addr, pxe, ack bool, t time.Time) {
	if !pxe || len(mac) == 0 {
		return
	}
	m, ip := mac.String(), ip.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.byMAC[m]
	if b != nil && !b.tftpFirst.IsZero() {
		b = nil // the firmware starts over: a new netboot
	}
	b = c.fresh(b, t)
	c.byMAC[m] = b
	if b.dhcpFirst.IsZero() {
		b.dhcpFirst = t
	}
	if ack {
		b.dhcpAck = t
	}
	b.last = t
	if ip.IsValid() {
		c.bind(ip, m, t)
	}
	c.evict()
}

// Transfer records a TFTP transfer of file (its cleaned name) to the client at ip, from start
// to end; ok when it completed.
func (c *Clock) Transfer(ip netip.Addr, file string, start, end time.Time, ok bool) {
	ip = ip.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	if mac, isCfg := ConfigMAC(file); isCfg {
		c.bind(ip, mac, start)
	}
	var b *boot
	if bd, bound := c.ipMAC[ip]; bound {
		b = c.fresh(c.byMAC[bd.mac], start)
		c.byMAC[bd.mac] = b
	} else {
		b = c.fresh(c.byIP[ip], start)
		c.byIP[ip] = b
	}
	if b.tftpFirst.IsZero() || start.Before(b.tftpFirst) {
		b.tftpFirst = start
	}
	if ok {
		if end.After(b.tftpEnd) {
			b.tftpEnd = end
		}
		switch file {
		case c.kernel:
			b.kernel = end.Sub(start)
		case c.initrd:
			b.initrd = end.Sub(start)
		}
	}
	if end.After(b.last) {
		b.last = end
	}
	c.evict()
}

// Hello returns the phases of the netboot that ended in the hello of mac at t, and forgets it.
// ip, when valid, is the agent's address, used when the netboot's downloads were never tied to
// the MAC. It returns nil when no recent netboot of that device was seen (it booted from
// other media, or the server was restarted meanwhile).
func (c *Clock) Hello(mac net.HardwareAddr, ip netip.Addr, t time.Time) []protocol.PhaseTiming {
	m, ip := mac.String(), ip.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.byMAC[m]
	delete(c.byMAC, m)
	if b == nil || b.tftpFirst.IsZero() {
		if ib := c.byIP[ip]; ib != nil {
			b = ib
			delete(c.byIP, ip)
		}
	}
	if b == nil || b.tftpEnd.IsZero() || t.Before(b.tftpEnd) || t.Sub(b.last) > c.cfg.MaxAge {
		return nil
	}
	var out []protocol.PhaseTiming
	add := func(phase string, d time.Duration) {
		out = append(out, protocol.PhaseTiming{Phase: phase, DurationMS: d.Milliseconds()})
	}
	if !b.dhcpFirst.IsZero() && !b.dhcpAck.IsZero() && !b.dhcpAck.Before(b.dhcpFirst) {
		add(PhasePXEDHCP, b.dhcpAck.Sub(b.dhcpFirst))
	}
	add(PhaseTFTP, b.tftpEnd.Sub(b.tftpFirst))
	if b.kernel > 0 {
		add(PhaseTFTPKernel, b.kernel)
	}
	if b.initrd > 0 {
		add(PhaseTFTPInitrd, b.initrd)
	}
	add(PhaseNetbootToHello, t.Sub(b.tftpEnd))
	return out
}

// fresh returns b, or a new netboot when there is none or b has had no news for MaxAge.
func (c *Clock) fresh(b *boot, t time.Time) *boot {
	if b == nil || t.Sub(b.last) > c.cfg.MaxAge {
		return &boot{last: t}
	}
	return b
}

// bind ties ip to mac, moving downloads kept under the address to the MAC's netboot when that
// has none of its own (pxelinux names the MAC only after pxelinux.0 and ldlinux.c32).
func (c *Clock) bind(ip netip.Addr, mac string, t time.Time) {
	c.ipMAC[ip] = binding{mac: mac, last: t}
	ib := c.byIP[ip]
	delete(c.byIP, ip)
	if ib == nil || t.Sub(ib.last) > c.cfg.MaxAge {
		return
	}
	b := c.byMAC[mac]
	if b == nil || t.Sub(b.last) > c.cfg.MaxAge {
		c.byMAC[mac] = ib
		return
	}
	if b.tftpFirst.IsZero() || ib.tftpFirst.Before(b.tftpFirst) {
		b.tftpFirst = ib.tftpFirst
	}
	if ib.tftpEnd.After(b.tftpEnd) {
		b.tftpEnd = ib.tftpEnd
	}
	b.kernel, b.initrd = max(b.kernel, ib.kernel), max(b.initrd, ib.initrd)
	if ib.last.After(b.last) {
		b.last = ib.last
	}
}

// evict drops the least recently active entries beyond MaxDevices. The scan is linear, but
// it runs only on a line with more devices in flight than the bound.
func (c *Clock) evict() {
	for len(c.byMAC)+len(c.byIP) > c.cfg.MaxDevices {
		var oldMAC string
		var oldIP netip.Addr
		var oldest time.Time
		for m, b := range c.byMAC {
			if oldest.IsZero() || b.last.Before(oldest) {
				oldMAC, oldest = m, b.last
			}
		}
		for ip, b := range c.byIP {
			if oldest.IsZero() || b.last.Before(oldest) {
				oldMAC, oldIP, oldest = "", ip, b.last
			}
		}
		if oldMAC != "" {
			delete(c.byMAC, oldMAC)
		} else {
			delete(c.byIP, oldIP)
		}
	}
	for len(c.ipMAC) > c.cfg.MaxDevices {
		var oldIP netip.Addr
		var oldest time.Time
		for ip, bd := range c.ipMAC {
			if oldest.IsZero() || bd.last.Before(oldest) {
				oldIP, oldest = ip, bd.last
			}
		}
		delete(c.ipMAC, oldIP)
	}
}

// ConfigMAC returns the MAC named by a per-device pxelinux configuration file name such as
// "pxelinux.cfg/01-52-54-00-12-34-56" (in any directory), in the form net.HardwareAddr.String
// gives.
func ConfigMAC(file string) (string, bool) {
	dir, base := path.Split(file)
	if path.Base(dir) != "pxelinux.cfg" {
		return "", false
	}
	mac, ok := pxecfg.ParseConfigName(base)
	if !ok {
		return "", false
	}
	return mac.String(), true
}
