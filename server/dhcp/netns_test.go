package dhcp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// inNetns runs setup on a thread moved into a new, unnamed network namespace
// holding a veth pair: "flsrv" with 10.99.0.1/24 for the server and "flcli",
// unnumbered, for the client. Sockets opened in setup stay in the namespace
// after the thread moves back; the namespace and the veth pair vanish when
// the last of them is closed, so nothing is left behind on the host.
func inNetns(t *testing.T, setup func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace and a veth pair (CI runs as root)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new network namespace: %v", err)
	}
	defer ns.Close()
	defer func() {
		if err := netns.Set(orig); err != nil {
			// The thread is unusable; with it locked, the runtime
			// discards it when the goroutine ends.
			t.Errorf("back to the original namespace: %v", err)
		}
	}()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	la := netlink.NewLinkAttrs()
	la.Name = "flsrv"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "flcli"}); err != nil {
		t.Fatalf("veth: %v", err)
	}
	for _, name := range []string{"lo", "flsrv", "flcli"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "flsrv" {
			addr, _ := netlink.ParseAddr("10.99.0.1/24")
			if err := h.AddrAdd(l, addr); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	setup()
}

// Real DHCP over Ethernet: the client has no address and broadcasts from a
// raw socket, as firmware does; the server listens on 0.0.0.0:67 bound to
// its interface and broadcasts its replies.
func TestNetnsBroadcast(t *testing.T) {
	for _, mode := range []Mode{ModeProxy, ModeFull} {
		t.Run(string(mode), func(t *testing.T) {
			var srv *Server
			var c *nclient4.Client
			cfg := Config{
				Mode:       mode,
				Interface:  "flsrv",
				RangeStart: netip.MustParseAddr("10.99.0.100"),
				RangeEnd:   netip.MustParseAddr("10.99.0.110"),
				LeaseFile:  filepath.Join(t.TempDir(), "leases.json"),
				// ListenAddr defaults to 0.0.0.0:67, ServerIP to
				// the interface's address.
			}
			inNetns(t, func() {
				var err error
				srv, err = New(cfg, Deps{Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				c, err = nclient4.New("flcli", nclient4.WithTimeout(time.Second), nclient4.WithRetry(3))
				if err != nil {
					srv.Close()
					t.Fatal(err)
				}
			})
			if t.Failed() {
				return
			}
			defer c.Close()
			stop := serveInBackground(t, srv)
			defer stop()

			if got := srv.cfg.ServerIP.String(); got != "10.99.0.1" {
				t.Errorf("server IP taken from the interface = %s", got)
			}
			switch mode {
			case ModeProxy:
				offer, err := c.DiscoverOffer(ctx, pxe(iana.EFI_X86_64)...)
				if err != nil {
					t.Fatal(err)
				}
				checkProxyReply(t, offer, srv, "syslinux.efi")
				// Non-PXE DHCP is left to the plant's server.
				short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
				defer cancel()
				if _, err := c.DiscoverOffer(short); err == nil {
					t.Error("proxy answered a non-PXE client")
				}
			case ModeFull:
				lease, err := c.Request(ctx, pxe(iana.INTEL_X86PC)...)
				if err != nil {
					t.Fatal(err)
				}
				if ip := lease.ACK.YourIPAddr.String(); ip != "10.99.0.100" {
					t.Errorf("leased %s, want the first address of the range", ip)
				}
				if lease.ACK.BootFileName != "pxelinux.0" || !lease.ACK.ServerIPAddr.Equal(net.IPv4(10, 99, 0, 1)) {
					t.Errorf("boot: file %q next-server %s", lease.ACK.BootFileName, lease.ACK.ServerIPAddr)
				}
			}
		})
	}
}

func serveInBackground(t *testing.T, srv *Server) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return")
		}
	}
}
