// Package dhcp is the DHCP side of the Flashline line server's netboot: it
// tells PXE firmware which boot file to fetch from which TFTP server.
//
// It runs in one of two modes:
//
//   - [ModeProxy] (proxyDHCP, PXE specification 2.1 section 2.2.5): the
//     plant's own DHCP server hands out addresses; this server answers only
//     PXE clients (option 60 vendor class starting with "PXEClient"), with
//     offers that carry no address, only the boot server and file, on port
//     67, and answers the PXE clients' follow-up requests on port 4011.
//     Everybody else's DHCP traffic is ignored, so it coexists with the
//     plant's server on the same segment, like dnsmasq's "dhcp-range=...,proxy".
//   - [ModeFull]: an ordinary DHCP server with an address range and leases
//     kept in a small file that survives restarts. It answers every client
//     (the agent's own DHCP in the initramfs is not a PXE client) and adds
//     the boot file for PXE clients only. It is authoritative: requests for
//     addresses it cannot grant get a DHCPNAK, so it must be the only DHCP
//     server on its segment.
//
// Boot file by client architecture (option 93): 0 (BIOS) gets
// [BootFiles.BIOS] (pxelinux.0, or lpxelinux.0 to load the kernel over HTTP),
// 7 and 9 (x64 UEFI) get [BootFiles.EFI64] (syslinux.efi), 6 (IA32 UEFI)
// [BootFiles.EFI32]; [BootFiles.ByArch] adds or overrides any other. A client
// whose user class (option 77) is "iPXE" gets [BootFiles.IPXE] when set,
// typically an http:// URL of an iPXE script. Every boot reply sets siaddr
// (next-server) and options 66 and 67, and in proxy mode also option 60
// "PXEClient", the PXE vendor options (option 43: discovery control 8,
// "boot the file in this reply, no boot server discovery") and the client's
// machine identifier (option 97) echoed back, which UEFI firmware checks.
//
// Malformed packets are logged and dropped. Replies to clients without an
// address are broadcast, so set [Config.Interface] on a host with several
// interfaces.
//
// Typical use:
//
//	srv, err := dhcp.New(dhcp.Config{Mode: dhcp.ModeProxy, Interface: "eth1"}, dhcp.Deps{Logger: log})
//	if err != nil { ... }
//	err = srv.Serve(ctx) // returns nil once ctx is cancelled
package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// Mode selects proxyDHCP or full DHCP.
type Mode string

const (
	// ModeProxy answers PXE clients only, without addresses.
	ModeProxy Mode = "proxy"
	// ModeFull hands out addresses from a range to every client.
	ModeFull Mode = "full"
)

// BootFiles names what each kind of client boots. Empty fields take the
// defaults shown; a client whose architecture maps to no file gets no boot
// information (and, in proxy mode, no answer at all).
type BootFiles struct {
	// BIOS is for client architecture 0. Default "pxelinux.0"; use
	// "lpxelinux.0" to let pxelinux fetch the kernel over HTTP.
	BIOS string
	// EFI64 is for architectures 7 and 9 (x64 UEFI). Default "syslinux.efi".
	EFI64 string
	// EFI32 is for architecture 6 (IA32 UEFI). No default.
	EFI32 string
	// ByArch maps further RFC 4578 architecture numbers (e.g. 11, ARM64
	// UEFI) to files; it overrides the fields above, and an empty value
	// withholds boot information from that architecture.
	ByArch map[uint16]string
	// IPXE, when set, is given instead to clients whose user class is
	// "iPXE" (already running iPXE), e.g. "http://10.0.0.1:8080/boot.ipxe".
	IPXE string
}

// Config is the DHCP service's configuration.
type Config struct {
	Mode Mode
	// Interface binds the sockets to one network interface
	// (SO_BINDTODEVICE) so broadcasts go out and come in there only.
	Interface string
	// ListenAddr is where DHCP requests arrive. Default "0.0.0.0:67".
	ListenAddr string
	// PXEListenAddr is where PXE clients send their proxyDHCP requests in
	// proxy mode. Default "0.0.0.0:4011". Not used in full mode.
	PXEListenAddr string
	// ServerIP is this server's address on the line network: the server
	// identifier (option 54). Default: the only IPv4 address of Interface.
	ServerIP netip.Addr
	// NextServer is the TFTP server (siaddr and option 66). Default ServerIP.
	NextServer netip.Addr
	Boot       BootFiles

	// The rest is for full mode only.

	// RangeStart and RangeEnd delimit the addresses handed out (inclusive).
	RangeStart, RangeEnd netip.Addr
	// Subnet is the line network, e.g. 10.77.0.0/24 (option 1); it must
	// contain the range. Default: the range's /24.
	Subnet netip.Prefix
	// Router (option 3) and DNS (option 6) are optional.
	Router netip.Addr
	DNS    []netip.Addr
	// LeaseTime defaults to one hour.
	LeaseTime time.Duration
	// PXEOnly gives addresses only to PXE firmware and to MACs the pool
	// already knows (the agent's DHCP after its PXE boot renews the same
	// MAC's address), so no other device on the line can take one.
	PXEOnly bool
	// PXEReserve is the fraction of the pool (0 to 1) that only clients
	// which PXE-booted may take: rogue or foreign devices cannot empty the
	// pool for the line's devices. 0 reserves nothing.
	PXEReserve float64
	// LeaseFile keeps leases across restarts. Empty keeps them in memory
	// only, which is for tests: after a restart devices could then be
	// given addresses still in use.
	LeaseFile string
}

// Deps are the server's collaborators.
type Deps struct {
	// Logger default slog.Default().
	Logger *slog.Logger
	// OnReply, when set, is told about every reply sent, so that the line
	// server can time each device's netboot. It runs on the packet's
	// goroutine and should return quickly.
	OnReply func(Reply)
}

// Reply describes one reply sent, for [Deps.OnReply].
type Reply struct {
	Time time.Time
	MAC  net.HardwareAddr
	// IP is the client's address: the one offered or acknowledged (yiaddr)
	// in full mode, the one it already has (ciaddr) on proxy requests to
	// port 4011; invalid when neither is set (proxy offers).
	IP netip.Addr
	// PXE: the request came from PXE firmware (vendor class "PXEClient").
	PXE bool
	// Type is the reply's message type: "offer", "ack" or "nak".
	Type string
	// RelayInfo is the raw value of the request's relay agent information (option 82,
	// RFC 3046) when a relay added one: the line switch's circuit and remote IDs, which
	// name the port (the station) the device is plugged into. Nil without.
	RelayInfo []byte
}

// Server is a DHCP service. Create it with [New], run it with [Server.Serve].
type Server struct {
	cfg     Config
	log     *slog.Logger
	onReply func(Reply)
	pool    *pool // full mode only
	conn    *net.UDPConn
	pconn   *net.UDPConn // port 4011, proxy mode only
	// busy bounds how many packets are handled at once; server4 starts a
	// goroutine per packet, and a flood must not pile them up.
	busy chan struct{}
	// stopping is read-locked by each handler and write-locked by Serve
	// on its way out, to wait for the handlers.
	stopping sync.RWMutex

	closeOnce sync.Once
}

// maxInFlight bounds concurrently handled packets; beyond it packets are
// dropped, which DHCP clients survive by retransmitting.
const maxInFlight = 64

// New checks cfg, loads the lease file and binds the sockets, so that
// configuration and permission errors surface before [Server.Serve].
func New(cfg Config, deps Deps) (*Server, error) {
	s := &Server{log: deps.Logger, onReply: deps.OnReply, busy: make(chan struct{}, maxInFlight)}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "dhcp")
	if err := s.setDefaults(&cfg); err != nil {
		return nil, fmt.Errorf("dhcp: %w", err)
	}
	s.cfg = cfg
	if cfg.Mode == ModeFull {
		exclude := []netip.Addr{cfg.ServerIP, cfg.Router, cfg.NextServer}
		exclude = append(exclude, cfg.DNS...)
		p, err := newPool(cfg.RangeStart, cfg.RangeEnd, exclude, cfg.LeaseFile, s.log)
		if err != nil {
			return nil, fmt.Errorf("dhcp: %w", err)
		}
		if cfg.PXEOnly {
			p.nonPXEMax = 0
		} else if cfg.PXEReserve > 0 {
			usable := 0
			for i := range p.size {
				if p.inRange(p.first + i) {
					usable++
				}
			}
			p.nonPXEMax = usable - int(math.Ceil(float64(usable)*min(cfg.PXEReserve, 1)))
		}
		s.pool = p
	}
	var err error
	if s.conn, err = listen(cfg.Interface, cfg.ListenAddr); err != nil {
		return nil, fmt.Errorf("dhcp: %w", err)
	}
	if cfg.Mode == ModeProxy {
		if s.pconn, err = listen(cfg.Interface, cfg.PXEListenAddr); err != nil {
			s.conn.Close()
			return nil, fmt.Errorf("dhcp: %w", err)
		}
	}
	return s, nil
}

func (s *Server) setDefaults(cfg *Config) error {
	switch cfg.Mode {
	case ModeProxy, ModeFull:
	case "":
		return errors.New(`Mode is required: "proxy" or "full"`)
	default:
		return fmt.Errorf("unknown mode %q", cfg.Mode)
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "0.0.0.0:67"
	}
	if cfg.PXEListenAddr == "" {
		cfg.PXEListenAddr = "0.0.0.0:4011"
	}
	if !cfg.ServerIP.IsValid() {
		if cfg.Interface == "" {
			return errors.New("ServerIP is required when no Interface is given")
		}
		ip, err := interfaceIPv4(cfg.Interface)
		if err != nil {
			return err
		}
		cfg.ServerIP = ip
	}
	if !cfg.ServerIP.Is4() {
		return fmt.Errorf("ServerIP %s is not IPv4", cfg.ServerIP)
	}
	if !cfg.NextServer.IsValid() {
		cfg.NextServer = cfg.ServerIP
	}
	if cfg.Boot.BIOS == "" {
		cfg.Boot.BIOS = "pxelinux.0"
	}
	if cfg.Boot.EFI64 == "" {
		cfg.Boot.EFI64 = "syslinux.efi"
	}
	for _, f := range append([]string{cfg.Boot.BIOS, cfg.Boot.EFI64, cfg.Boot.EFI32, cfg.Boot.IPXE}, mapValues(cfg.Boot.ByArch)...) {
		// The BOOTP file field holds 127 bytes plus a NUL.
		if len(f) > 127 {
			return fmt.Errorf("boot file name %q is longer than 127 bytes", f)
		}
	}
	if cfg.Mode != ModeFull {
		return nil
	}
	if !cfg.RangeStart.Is4() || !cfg.RangeEnd.Is4() {
		return errors.New("full mode needs RangeStart and RangeEnd (IPv4)")
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = netip.PrefixFrom(cfg.RangeStart, 24).Masked()
	}
	if !cfg.Subnet.Contains(cfg.RangeStart) || !cfg.Subnet.Contains(cfg.RangeEnd) {
		return fmt.Errorf("range %s-%s is not inside subnet %s", cfg.RangeStart, cfg.RangeEnd, cfg.Subnet)
	}
	if cfg.LeaseTime <= 0 {
		cfg.LeaseTime = time.Hour
	}
	if cfg.LeaseFile == "" {
		s.log.Warn("no lease file: leases will not survive a restart")
	}
	return nil
}

func mapValues(m map[uint16]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// interfaceIPv4 is the single IPv4 address of the named interface.
func interfaceIPv4(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", name, err)
	}
	var found []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && n.IP.To4() != nil {
				found = append(found, ip)
			}
		}
	}
	if len(found) != 1 {
		return netip.Addr{}, fmt.Errorf("interface %s has %d IPv4 addresses; set ServerIP", name, len(found))
	}
	return found[0], nil
}

func listen(iface, addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	// server4's socket has SO_BROADCAST for replies to clients without an
	// address, and SO_BINDTODEVICE when iface is set.
	c, err := server4.NewIPv4UDPConn(iface, ua)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (interface %q): %w", addr, iface, err)
	}
	return c, nil
}

// Addr is the address DHCP requests arrive on, with the actual port when
// ListenAddr asked for port 0.
func (s *Server) Addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// PXEAddr is the proxyDHCP port 4011 address; invalid in full mode.
func (s *Server) PXEAddr() netip.AddrPort {
	if s.pconn == nil {
		return netip.AddrPort{}
	}
	return s.pconn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Leases returns the leases on record (full mode), for the dashboard. Expired
// leases are included until their address goes to another client: they let a
// returning device get its old address back. Compare Expires with the time.
func (s *Server) Leases() []Lease {
	if s.pool == nil {
		return nil
	}
	return s.pool.leases()
}

// Close releases the sockets. Serve calls it on return.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.conn.Close()
		if s.pconn != nil {
			if perr := s.pconn.Close(); err == nil {
				err = perr
			}
		}
	})
	return err
}

// Serve answers requests until ctx is cancelled, then returns nil. It
// returns an error when a socket fails. It closes the sockets on return, so
// a Server serves once.
func (s *Server) Serve(ctx context.Context) error {
	attrs := []any{"mode", string(s.cfg.Mode), "addr", s.Addr().String(), "interface", s.cfg.Interface,
		"server_ip", s.cfg.ServerIP.String(), "next_server", s.cfg.NextServer.String()}
	if s.pconn != nil {
		attrs = append(attrs, "pxe_addr", s.PXEAddr().String())
	} else {
		attrs = append(attrs, "range", s.cfg.RangeStart.String()+"-"+s.cfg.RangeEnd.String(), "lease_file", s.cfg.LeaseFile)
	}
	s.log.Info("serving", attrs...)

	type port struct {
		conn *net.UDPConn
		pxe  bool
	}
	ports := []port{{s.conn, false}}
	if s.pconn != nil {
		ports = append(ports, port{s.pconn, true})
	}
	errc := make(chan error, len(ports))
	var wg sync.WaitGroup
	for _, p := range ports {
		srv, err := server4.NewServer("", nil, func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
			s.handle(conn, peer, m, p.pxe)
		}, server4.WithConn(p.conn), server4.WithLogger(logAdapter{s.log}))
		if err != nil {
			s.Close()
			return fmt.Errorf("dhcp: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- srv.Serve()
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		// A socket failed on its own: stop the other one too.
	}
	s.Close()
	wg.Wait()
	// Wait for handlers still running; later ones see the lock taken and
	// return at once.
	s.stopping.Lock()
	if err == nil || errors.Is(err, net.ErrClosed) {
		return nil // cancelled, or closed with Close
	}
	return fmt.Errorf("dhcp: %w", err)
}

// handle is called by server4 in a goroutine of its own for every packet
// that parsed.
func (s *Server) handle(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4, pxePort bool) {
	if !s.stopping.TryRLock() {
		return // Serve is returning
	}
	defer s.stopping.RUnlock()
	select {
	case s.busy <- struct{}{}:
		defer func() { <-s.busy }()
	default:
		s.log.Warn("dropped packet: too many in flight", "peer", peer.String())
		return
	}
	defer func() {
		// A bug in handling one odd packet must not take the line down.
		if r := recover(); r != nil {
			s.log.Error("panic while handling a packet", "panic", fmt.Sprint(r), "peer", peer.String())
		}
	}()
	upeer, ok := peer.(*net.UDPAddr)
	if !ok {
		return
	}
	resp := s.respond(req, pxePort)
	if resp == nil {
		return
	}
	echoRelayInfo(req, resp)
	dst := replyAddr(req, upeer)
	if _, err := conn.WriteTo(resp.ToBytes(), dst); err != nil {
		s.log.Warn("cannot send reply", "to", dst.String(), "type", resp.MessageType().String(), "err", err)
		return
	}
	if s.onReply != nil {
		s.onReply(replyInfo(req, resp))
	}
	s.log.Debug("sent", "to", dst.String(), "type", resp.MessageType().String(), "mac", req.ClientHWAddr.String(),
		"yiaddr", resp.YourIPAddr.String(), "file", resp.BootFileName)
}

// echoRelayInfo copies the request's relay agent information into the reply: RFC 3046
// section 2.2, the relay strips it on the way back (and some relays drop replies without it).
func echoRelayInfo(req, resp *dhcpv4.DHCPv4) {
	if ri := req.Options.Get(dhcpv4.OptionRelayAgentInformation); ri != nil && resp.Options.Get(dhcpv4.OptionRelayAgentInformation) == nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, ri))
	}
}

func replyInfo(req, resp *dhcpv4.DHCPv4) Reply {
	r := Reply{Time: time.Now(), MAC: req.ClientHWAddr, PXE: classify(req).pxe,
		Type: strings.ToLower(resp.MessageType().String()), RelayInfo: req.Options.Get(dhcpv4.OptionRelayAgentInformation)}
	for _, ip := range []net.IP{resp.YourIPAddr, resp.ClientIPAddr} {
		if a, ok := netip.AddrFromSlice(ip.To4()); ok && ip.To4() != nil && !a.IsUnspecified() {
			r.IP = a
			break
		}
	}
	return r
}

// replyAddr follows RFC 2131 section 4.1: through the relay when there is
// one, else back where the request came from, which server4 has already
// turned into the broadcast address when the client had no address yet.
func replyAddr(req *dhcpv4.DHCPv4, peer *net.UDPAddr) *net.UDPAddr {
	if gi := req.GatewayIPAddr; gi != nil && !gi.IsUnspecified() {
		return &net.UDPAddr{IP: gi, Port: dhcpv4.ServerPort}
	}
	return peer
}

// logAdapter sends server4's log lines to slog: parse failures as warnings
// (they are the malformed packets we drop), the rest as debug.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Printf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Error parsing") {
		a.l.Warn("dropped malformed packet", "err", msg)
		return
	}
	a.l.Debug(msg)
}

func (a logAdapter) PrintMessage(prefix string, m *dhcpv4.DHCPv4) {
	a.l.Debug(prefix, "packet", m.Summary())
}
