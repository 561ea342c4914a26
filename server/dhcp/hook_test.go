package dhcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// OnReply hears of every reply sent: type, client MAC and address, and whether the client was
// PXE firmware.
func TestOnReply(t *testing.T) {
	got := make(chan Reply, 16)
	srv, stop := startDeps(t, fullConfig(t.TempDir()), Deps{OnReply: func(r Reply) { got <- r }})
	before := time.Now()
	for _, tt := range []struct {
		name string
		pxe  bool
	}{{"PXE firmware", true}, {"agent (not PXE)", false}} {
		m := mac(20)
		if !tt.pxe {
			m = mac(21)
		}
		c := newClient(t, srv.Addr(), m)
		var mods []dhcpv4.Modifier
		if tt.pxe {
			mods = pxe(iana.INTEL_X86PC)
		}
		lease, err := c.Request(ctx, mods...)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		ip, _ := netip.AddrFromSlice(lease.ACK.YourIPAddr.To4())
		for _, wantType := range []string{"offer", "ack"} {
			var r Reply
			select {
			case r = <-got:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: no %s reported", tt.name, wantType)
			}
			if r.Type != wantType || r.MAC.String() != m.String() || r.IP != ip || r.PXE != tt.pxe || r.Time.Before(before) {
				t.Errorf("%s: got %+v; want %s to %s at %s, pxe %v", tt.name, r, wantType, m, ip, tt.pxe)
			}
		}
	}
	stop()
	if len(got) != 0 {
		t.Errorf("%d replies more than expected", len(got))
	}
}
