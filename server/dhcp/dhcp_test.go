package dhcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start runs a server until the test ends (or stop is called) and returns it.
func start(t *testing.T, cfg Config) (srv *Server, stop func()) {
	t.Helper()
	return startDeps(t, cfg, Deps{})
}

// startDeps is start with collaborators; the logger is always the test's.
func startDeps(t *testing.T, cfg Config, deps Deps) (srv *Server, stop func()) {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.PXEListenAddr == "" {
		cfg.PXEListenAddr = "127.0.0.1:0"
	}
	if !cfg.ServerIP.IsValid() {
		cfg.ServerIP = netip.MustParseAddr("127.0.0.1")
	}
	deps.Logger = testLogger(t)
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return srv, stop
}

// client is an nclient4 client on loopback that sends to addr.
func newClient(t *testing.T, addr netip.AddrPort, mac net.HardwareAddr) *nclient4.Client {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := nclient4.NewWithConn(conn, mac,
		nclient4.WithServerAddr(net.UDPAddrFromAddrPort(addr)),
		nclient4.WithTimeout(300*time.Millisecond), nclient4.WithRetry(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var guid = []byte{0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01}

// pxe makes a request look like PXE firmware's: vendor class, architecture,
// machine identifier.
func pxe(arch iana.Arch) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:003016", arch))),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid),
	}
}

func mac(last byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, last} }

var ctx = context.Background()

// checkProxyReply checks what every proxyDHCP answer must carry.
func checkProxyReply(t *testing.T, r *dhcpv4.DHCPv4, srv *Server, wantFile string) {
	t.Helper()
	if !r.YourIPAddr.IsUnspecified() {
		t.Errorf("yiaddr = %s; a proxy never offers an address", r.YourIPAddr)
	}
	if got := r.BootFileName; got != wantFile {
		t.Errorf("file = %q, want %q", got, wantFile)
	}
	if got := r.BootFileNameOption(); got != wantFile {
		t.Errorf("option 67 = %q, want %q", got, wantFile)
	}
	if !r.ServerIPAddr.Equal(srv.cfg.NextServer.AsSlice()) {
		t.Errorf("siaddr = %s, want %s", r.ServerIPAddr, srv.cfg.NextServer)
	}
	if got := r.TFTPServerName(); got != srv.cfg.NextServer.String() {
		t.Errorf("option 66 = %q, want %s", got, srv.cfg.NextServer)
	}
	if !r.ServerIdentifier().Equal(srv.cfg.ServerIP.AsSlice()) {
		t.Errorf("server identifier = %s", r.ServerIdentifier())
	}
	if got := r.ClassIdentifier(); got != "PXEClient" {
		t.Errorf("option 60 = %q, want PXEClient", got)
	}
	if got := r.GetOneOption(dhcpv4.OptionClientMachineIdentifier); !bytes.Equal(got, guid) {
		t.Errorf("option 97 = %x, want the client's %x", got, guid)
	}
	if v, ok := findPXESubOption(r.GetOneOption(dhcpv4.OptionVendorSpecificInformation), pxeDiscoveryControl); !ok || !bytes.Equal(v, []byte{8}) {
		t.Errorf("option 43 = %x, want discovery control 8", r.GetOneOption(dhcpv4.OptionVendorSpecificInformation))
	}
	if r.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Error("proxy reply carries a lease time")
	}
}

func TestProxyOffer(t *testing.T) {
	tests := []struct {
		name string
		boot BootFiles
		mods []dhcpv4.Modifier
		want string
	}{
		{name: "BIOS", mods: pxe(iana.INTEL_X86PC), want: "pxelinux.0"},
		{name: "BIOS with lpxelinux", boot: BootFiles{BIOS: "lpxelinux.0"}, mods: pxe(iana.INTEL_X86PC), want: "lpxelinux.0"},
		{name: "UEFI x64 (7)", mods: pxe(iana.EFI_X86_64), want: "syslinux.efi"},
		{name: "UEFI x64 (9)", mods: pxe(iana.EFI_BC), want: "syslinux.efi"},
		{name: "UEFI IA32 configured", boot: BootFiles{EFI32: "efi32/syslinux.efi"}, mods: pxe(iana.EFI_IA32), want: "efi32/syslinux.efi"},
		{name: "ARM64 by table", boot: BootFiles{ByArch: map[uint16]string{11: "grubaa64.efi"}}, mods: pxe(iana.EFI_ARM64), want: "grubaa64.efi"},
		{name: "architecture only in the vendor class", mods: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
			dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid),
		}, want: "syslinux.efi"},
		{name: "bare PXEClient is BIOS", mods: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
			dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid),
		}, want: "pxelinux.0"},
		{name: "iPXE with a script URL", boot: BootFiles{IPXE: "http://10.77.0.1:8080/boot.ipxe"},
			mods: append(pxe(iana.INTEL_X86PC), dhcpv4.WithUserClass("iPXE", false)), want: "http://10.77.0.1:8080/boot.ipxe"},
		{name: "iPXE without a script URL", mods: append(pxe(iana.EFI_BC), dhcpv4.WithUserClass("iPXE", false)), want: "syslinux.efi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := start(t, Config{Mode: ModeProxy, Boot: tt.boot, NextServer: netip.MustParseAddr("127.0.0.2")})
			c := newClient(t, srv.Addr(), mac(1))
			offer, err := c.DiscoverOffer(ctx, tt.mods...)
			if err != nil {
				t.Fatal(err)
			}
			checkProxyReply(t, offer, srv, tt.want)
			if !offer.IsBroadcast() {
				t.Error("proxy offer without the broadcast flag")
			}
		})
	}
}

func TestProxyStaysSilent(t *testing.T) {
	srv, _ := start(t, Config{Mode: ModeProxy})
	tests := []struct {
		name string
		send func(c *nclient4.Client) (*dhcpv4.DHCPv4, error)
	}{
		{"non-PXE discover", func(c *nclient4.Client) (*dhcpv4.DHCPv4, error) { return c.DiscoverOffer(ctx) }},
		{"other vendor class", func(c *nclient4.Client) (*dhcpv4.DHCPv4, error) {
			return c.DiscoverOffer(ctx, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("MSFT 5.0")))
		}},
		{"architecture without a boot file", func(c *nclient4.Client) (*dhcpv4.DHCPv4, error) {
			return c.DiscoverOffer(ctx, pxe(iana.EFI_ARM64)...)
		}},
		{"PXE request to the plant's server", func(c *nclient4.Client) (*dhcpv4.DHCPv4, error) {
			req, _ := dhcpv4.New(append(pxe(iana.INTEL_X86PC), dhcpv4.WithHwAddr(mac(2)),
				dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
				dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 0, 2, 50))))...)
			return c.SendAndRead(ctx, net.UDPAddrFromAddrPort(srv.Addr()), req, nil)
		}},
		{"PXE discover on port 4011", func(c *nclient4.Client) (*dhcpv4.DHCPv4, error) {
			req, _ := dhcpv4.NewDiscovery(mac(2), pxe(iana.INTEL_X86PC)...)
			return c.SendAndRead(ctx, net.UDPAddrFromAddrPort(srv.PXEAddr()), req, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, srv.Addr(), mac(2))
			r, err := tt.send(c)
			if !errors.Is(err, nclient4.ErrNoResponse) {
				t.Errorf("got %v, %v; want no response", r, err)
			}
		})
	}
	// And it still answers PXE clients afterwards.
	if _, err := newClient(t, srv.Addr(), mac(3)).DiscoverOffer(ctx, pxe(iana.INTEL_X86PC)...); err != nil {
		t.Errorf("PXE discover after the silent cases: %v", err)
	}
}

// The second half of the proxyDHCP exchange: the client, now with an
// address from the plant's server, asks the proxy on port 4011.
func TestProxyPort4011(t *testing.T) {
	srv, _ := start(t, Config{Mode: ModeProxy})
	c := newClient(t, srv.PXEAddr(), mac(4))
	clientIP := net.IPv4(127, 0, 0, 1)
	for _, tt := range []struct {
		name     string
		mt       dhcpv4.MessageType
		arch     iana.Arch
		item     []byte // PXE boot item sent in option 43
		wantFile string
	}{
		{"BIOS request", dhcpv4.MessageTypeRequest, iana.INTEL_X86PC, nil, "pxelinux.0"},
		{"UEFI request", dhcpv4.MessageTypeRequest, iana.EFI_BC, nil, "syslinux.efi"},
		{"inform", dhcpv4.MessageTypeInform, iana.EFI_X86_64, nil, "syslinux.efi"},
		{"boot item echoed", dhcpv4.MessageTypeRequest, iana.INTEL_X86PC, []byte{0x80, 0x00, 0x00, 0x00}, "pxelinux.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mods := append(pxe(tt.arch), dhcpv4.WithHwAddr(mac(4)), dhcpv4.WithMessageType(tt.mt), dhcpv4.WithClientIP(clientIP))
			if tt.item != nil {
				mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation,
					append(append([]byte{pxeBootItem, 4}, tt.item...), pxeEnd)))
			}
			req, err := dhcpv4.New(mods...)
			if err != nil {
				t.Fatal(err)
			}
			ack, err := c.SendAndRead(ctx, net.UDPAddrFromAddrPort(srv.PXEAddr()), req, nclient4.IsMessageType(dhcpv4.MessageTypeAck))
			if err != nil {
				t.Fatal(err)
			}
			checkProxyReply(t, ack, srv, tt.wantFile)
			if !ack.ClientIPAddr.Equal(clientIP) {
				t.Errorf("ciaddr = %s, want %s", ack.ClientIPAddr, clientIP)
			}
			item, ok := findPXESubOption(ack.GetOneOption(dhcpv4.OptionVendorSpecificInformation), pxeBootItem)
			if tt.item != nil && (!ok || !bytes.Equal(item, tt.item)) {
				t.Errorf("boot item = %x, want %x", item, tt.item)
			}
			if tt.item == nil && ok {
				t.Errorf("boot item %x sent unasked", item)
			}
		})
	}
}

func fullConfig(dir string) Config {
	return Config{
		Mode:       ModeFull,
		RangeStart: netip.MustParseAddr("10.77.0.100"),
		RangeEnd:   netip.MustParseAddr("10.77.0.109"),
		Subnet:     netip.MustParsePrefix("10.77.0.0/24"),
		Router:     netip.MustParseAddr("10.77.0.1"),
		DNS:        []netip.Addr{netip.MustParseAddr("10.77.0.1")},
		LeaseTime:  10 * time.Minute,
		LeaseFile:  filepath.Join(dir, "leases.json"),
		ServerIP:   netip.MustParseAddr("127.0.0.1"),
		NextServer: netip.MustParseAddr("10.77.0.1"),
	}
}

func TestFullDORA(t *testing.T) {
	srv, _ := start(t, fullConfig(t.TempDir()))
	for _, tt := range []struct {
		name     string
		mac      net.HardwareAddr
		mods     []dhcpv4.Modifier
		wantFile string
	}{
		{"BIOS PXE", mac(10), pxe(iana.INTEL_X86PC), "pxelinux.0"},
		{"UEFI PXE", mac(11), pxe(iana.EFI_X86_64), "syslinux.efi"},
		{"agent in the initramfs (not PXE)", mac(12), nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, srv.Addr(), tt.mac)
			lease, err := c.Request(ctx, tt.mods...)
			if err != nil {
				t.Fatal(err)
			}
			ack := lease.ACK
			ip, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
			if ip.Less(srv.cfg.RangeStart) || srv.cfg.RangeEnd.Less(ip) {
				t.Errorf("leased %s, outside the range", ip)
			}
			if !ack.YourIPAddr.Equal(lease.Offer.YourIPAddr) {
				t.Errorf("ACK %s differs from OFFER %s", ack.YourIPAddr, lease.Offer.YourIPAddr)
			}
			if ack.BootFileName != tt.wantFile || ack.BootFileNameOption() != tt.wantFile {
				t.Errorf("file = %q / option 67 %q, want %q", ack.BootFileName, ack.BootFileNameOption(), tt.wantFile)
			}
			if tt.wantFile != "" && !ack.ServerIPAddr.Equal(net.IPv4(10, 77, 0, 1)) {
				t.Errorf("siaddr = %s", ack.ServerIPAddr)
			}
			if m := ack.SubnetMask(); m.String() != "ffffff00" {
				t.Errorf("mask = %s", m)
			}
			if r := ack.Router(); len(r) != 1 || !r[0].Equal(net.IPv4(10, 77, 0, 1)) {
				t.Errorf("router = %v", r)
			}
			if d := ack.IPAddressLeaseTime(0); d != 10*time.Minute {
				t.Errorf("lease time = %v", d)
			}
			if ack.ClassIdentifier() != "" {
				t.Error("full-mode reply carries option 60")
			}
			// Asking again gives the same address.
			again, err := c.Request(ctx, tt.mods...)
			if err != nil {
				t.Fatal(err)
			}
			if !again.ACK.YourIPAddr.Equal(ack.YourIPAddr) {
				t.Errorf("second lease %s, first %s", again.ACK.YourIPAddr, ack.YourIPAddr)
			}
		})
	}
	got := map[string]bool{}
	for _, l := range srv.Leases() {
		if got[l.IP.String()] {
			t.Errorf("address %s leased twice", l.IP)
		}
		got[l.IP.String()] = true
	}
	if len(got) != 3 {
		t.Errorf("%d leases, want 3: %v", len(got), srv.Leases())
	}
}

func TestFullNakAndRelease(t *testing.T) {
	cfg := fullConfig(t.TempDir())
	cfg.RangeEnd = cfg.RangeStart // a pool of one address
	srv, _ := start(t, cfg)
	a, b := newClient(t, srv.Addr(), mac(20)), newClient(t, srv.Addr(), mac(21))
	la, err := a.Request(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.DiscoverOffer(ctx); !errors.Is(err, nclient4.ErrNoResponse) {
		t.Errorf("second client got an offer from a full pool: %v", err)
	}
	request := func(c *nclient4.Client, m net.HardwareAddr, ip net.IP) (*dhcpv4.DHCPv4, error) {
		req, _ := dhcpv4.New(dhcpv4.WithHwAddr(m), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))
		return c.SendAndRead(ctx, net.UDPAddrFromAddrPort(srv.Addr()), req, nil)
	}
	// INIT-REBOOT for someone else's address, and for one outside the range.
	for _, ip := range []net.IP{la.ACK.YourIPAddr, net.IPv4(10, 77, 0, 200), net.IPv4(192, 168, 1, 5)} {
		r, err := request(b, mac(21), ip)
		if err != nil || r.MessageType() != dhcpv4.MessageTypeNak {
			t.Errorf("request for %s: %v %v, want NAK", ip, r, err)
		}
	}
	// INIT-REBOOT for its own address is acknowledged.
	if r, err := request(a, mac(20), la.ACK.YourIPAddr); err != nil || r.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("init-reboot of own address: %v %v", r, err)
	}
	// After a release the address is free for the other client.
	rel, _ := dhcpv4.NewReleaseFromACK(la.ACK)
	a.SendAndRead(ctx, net.UDPAddrFromAddrPort(srv.Addr()), rel, func(*dhcpv4.DHCPv4) bool { return false })
	lb, err := b.Request(ctx)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if !lb.ACK.YourIPAddr.Equal(la.ACK.YourIPAddr) {
		t.Errorf("got %s, want the released %s", lb.ACK.YourIPAddr, la.ACK.YourIPAddr)
	}
}

func TestLeasesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := fullConfig(dir)
	srv, stop := start(t, cfg)
	first := map[string]net.IP{}
	for i := byte(0); i < 3; i++ {
		l, err := newClient(t, srv.Addr(), mac(30+i)).Request(ctx, pxe(iana.INTEL_X86PC)...)
		if err != nil {
			t.Fatal(err)
		}
		first[mac(30+i).String()] = l.ACK.YourIPAddr
	}
	stop()

	// The file is complete JSON with our leases, and no temporary file is
	// left next to it.
	b, err := os.ReadFile(cfg.LeaseFile)
	if err != nil {
		t.Fatal(err)
	}
	var lf leaseFile
	if err := json.Unmarshal(b, &lf); err != nil || len(lf.Leases) != 3 {
		t.Fatalf("lease file: %v, %d leases:\n%s", err, len(lf.Leases), b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files next to the lease file: %v", ents)
	}

	srv2, _ := start(t, cfg)
	// A new device does not get any of the leased addresses...
	l, err := newClient(t, srv2.Addr(), mac(40)).Request(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for m, ip := range first {
		if ip.Equal(l.ACK.YourIPAddr) {
			t.Errorf("new device got %s, leased to %s before the restart", ip, m)
		}
	}
	// ...and the old ones get theirs back.
	for i := byte(0); i < 3; i++ {
		l, err := newClient(t, srv2.Addr(), mac(30+i)).Request(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := first[mac(30+i).String()]; !l.ACK.YourIPAddr.Equal(want) {
			t.Errorf("%s got %s after restart, had %s", mac(30+i), l.ACK.YourIPAddr, want)
		}
	}
}

func TestMalformedPacketsDropped(t *testing.T) {
	for _, mode := range []Mode{ModeProxy, ModeFull} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := fullConfig(t.TempDir())
			cfg.Mode = mode
			srv, _ := start(t, cfg)
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			good, _ := dhcpv4.NewDiscovery(mac(50), pxe(iana.INTEL_X86PC)...)
			gb := good.ToBytes()
			bad := [][]byte{
				{}, {1}, bytes.Repeat([]byte{0xff}, 300), gb[:100], gb[:240],
				append(append([]byte{}, gb[:240]...), 53, 200),    // option longer than the packet
				append(append([]byte{}, gb[:236]...), 1, 2, 3, 4), // bad magic cookie
			}
			// A reply (op 2) and a 16-byte hardware address are ignored too.
			r := append([]byte{}, gb...)
			r[0] = 2
			bad = append(bad, r)
			h := append([]byte{}, gb...)
			h[2] = 16
			bad = append(bad, h)
			for _, p := range bad {
				conn.WriteToUDPAddrPort(p, srv.Addr())
				if srv.PXEAddr().IsValid() {
					conn.WriteToUDPAddrPort(p, srv.PXEAddr())
				}
			}
			if _, err := newClient(t, srv.Addr(), mac(51)).DiscoverOffer(ctx, pxe(iana.INTEL_X86PC)...); err != nil {
				t.Fatalf("server broken after malformed packets: %v", err)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	ip := netip.MustParseAddr("127.0.0.1")
	full := fullConfig(t.TempDir())
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no mode", Config{ServerIP: ip}},
		{"bad mode", Config{Mode: "relay", ServerIP: ip}},
		{"no server IP", Config{Mode: ModeProxy}},
		{"IPv6 server IP", Config{Mode: ModeProxy, ServerIP: netip.MustParseAddr("::1")}},
		{"full without range", Config{Mode: ModeFull, ServerIP: ip}},
		{"range outside subnet", func() Config { c := full; c.Subnet = netip.MustParsePrefix("10.1.0.0/16"); return c }()},
		{"range reversed", func() Config { c := full; c.RangeStart, c.RangeEnd = c.RangeEnd, c.RangeStart; return c }()},
		{"range too large", func() Config {
			c := full
			c.RangeStart, c.RangeEnd, c.Subnet = netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.255.255.255"), netip.MustParsePrefix("10.0.0.0/8")
			return c
		}()},
		{"long boot file", Config{Mode: ModeProxy, ServerIP: ip, Boot: BootFiles{BIOS: strings.Repeat("x", 128)}}},
		{"corrupt lease file", func() Config {
			c := full
			os.WriteFile(c.LeaseFile, []byte(`{"version":1,"leases":[{`), 0o644)
			return c
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.ListenAddr, tc.cfg.PXEListenAddr = "127.0.0.1:0", "127.0.0.1:0"
			if s, err := New(tc.cfg, Deps{Logger: testLogger(t)}); err == nil {
				s.Close()
				t.Error("New succeeded")
			}
		})
	}
}

// Some ROMs send their proxyDHCP request to port 67 of the proxy they chose.
func TestProxyRequestOnPort67(t *testing.T) {
	srv, _ := start(t, Config{Mode: ModeProxy})
	c := newClient(t, srv.Addr(), mac(5))
	req, err := dhcpv4.New(append(pxe(iana.EFI_X86_64), dhcpv4.WithHwAddr(mac(5)),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(127, 0, 0, 1))))...)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := c.SendAndRead(ctx, net.UDPAddrFromAddrPort(srv.Addr()), req, nclient4.IsMessageType(dhcpv4.MessageTypeAck))
	if err != nil {
		t.Fatal(err)
	}
	checkProxyReply(t, ack, srv, "syslinux.efi")
}

func TestReplyAddr(t *testing.T) {
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 68}
	client := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 68}
	for _, tc := range []struct {
		name   string
		giaddr net.IP
		peer   *net.UDPAddr
		want   string
	}{
		{"no address yet: broadcast", nil, bcast, "255.255.255.255:68"},
		{"renewing client: back to it", nil, client, "10.0.0.5:68"},
		{"relayed: to the relay's server port", net.IPv4(10, 1, 0, 1), &net.UDPAddr{IP: net.IPv4(10, 1, 0, 1), Port: 67}, "10.1.0.1:67"},
	} {
		req, _ := dhcpv4.New(dhcpv4.WithGatewayIP(tc.giaddr))
		if got := replyAddr(req, tc.peer).String(); got != tc.want {
			t.Errorf("%s: reply to %s, want %s", tc.name, got, tc.want)
		}
	}
}
