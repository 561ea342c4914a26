package dhcp

import (
	"errors"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
)

func rogue(i int) net.HardwareAddr { return net.HardwareAddr{0x02, 0xba, 0xd0, 0, 0, byte(i)} }

// The attack of issue 13: in full mode rogue MACs (anything on the line network that is not
// PXE firmware) empty a 10-address pool, and the next PXE client gets nothing. With a PXE
// reserve they stop at their share, and with PXE-only they get nothing at all; the PXE client
// and then its agent (same MAC, not PXE) get their address either way.
func TestRogueMACsCannotEmptyThePool(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pxeOnly   bool
		reserve   float64
		rogueMax  int // leases the rogues may get
		pxeServed bool
	}{
		{"no protection (the reproduction)", false, 0, 10, false},
		{"half the pool reserved for PXE", false, 0.5, 5, true},
		{"PXE only", true, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fullConfig(t.TempDir()) // 10 addresses
			cfg.PXEOnly, cfg.PXEReserve = tc.pxeOnly, tc.reserve
			srv, _ := start(t, cfg)
			got := 0
			for i := range 10 {
				if _, err := newClient(t, srv.Addr(), rogue(i)).Request(ctx); err == nil {
					got++
				}
			}
			if got != tc.rogueMax {
				t.Errorf("rogue MACs got %d leases, want %d", got, tc.rogueMax)
			}
			// A REQUEST without a DISCOVER (INIT-REBOOT) for a free address must not get
			// round the share.
			if tc.pxeServed {
				c := newClient(t, srv.Addr(), rogue(99))
				req, _ := dhcpv4.New(dhcpv4.WithHwAddr(rogue(99)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
					dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 109))))
				r, err := c.SendAndRead(ctx, net.UDPAddrFromAddrPort(srv.Addr()), req, nil)
				if err != nil || r.MessageType() != dhcpv4.MessageTypeNak {
					t.Errorf("rogue INIT-REBOOT: %v %v, want NAK", r, err)
				}
			}
			dev := mac(77)
			lease, err := newClient(t, srv.Addr(), dev).Request(ctx, pxe(iana.INTEL_X86PC)...)
			if !tc.pxeServed {
				if !errors.Is(err, nclient4.ErrNoResponse) {
					t.Fatalf("PXE client after the rogues: %v, want no answer (pool empty)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("PXE client after 10 rogue MACs: %v", err)
			}
			// The agent in the initramfs asks again, same MAC, not PXE.
			again, err := newClient(t, srv.Addr(), dev).Request(ctx)
			if err != nil {
				t.Fatalf("the agent's DHCP after the PXE boot: %v", err)
			}
			if !again.ACK.YourIPAddr.Equal(lease.ACK.YourIPAddr) {
				t.Errorf("agent got %s, PXE firmware %s", again.ACK.YourIPAddr, lease.ACK.YourIPAddr)
			}
		})
	}
}
