package dhcp

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPoolAllocation(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "leases.json")
	p, err := newPool(netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.12"),
		[]netip.Addr{netip.MustParseAddr("10.0.0.11")}, path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return now }
	bind := func(m byte, want string) {
		t.Helper()
		ip, ok := p.offer(mac(m), netip.Addr{})
		if !ok || ip.String() != want {
			t.Fatalf("offer to %d = %s %v, want %s", m, ip, ok, want)
		}
		if _, err := p.bind(mac(m), ip, time.Hour, ""); err != nil {
			t.Fatal(err)
		}
	}
	bind(1, "10.0.0.10") // the excluded .11 is skipped
	bind(2, "10.0.0.12")
	if ip, ok := p.offer(mac(3), netip.Addr{}); ok {
		t.Fatalf("offer from a full pool: %s", ip)
	}
	// The requested address is honoured when free, refused when not.
	if _, err := p.bind(mac(3), netip.MustParseAddr("10.0.0.11"), time.Hour, ""); err == nil {
		t.Error("bound an excluded address")
	}
	now = now.Add(2 * time.Hour) // both leases expire
	bind(2, "10.0.0.12")         // the old owner gets its address back
	bind(3, "10.0.0.10")         // a newcomer takes the expired one
	// A declined address stays out of the pool, even for the one who had it.
	if err := p.decline(mac(3), netip.MustParseAddr("10.0.0.10")); err != nil {
		t.Fatal(err)
	}
	if ip, ok := p.offer(mac(3), netip.Addr{}); ok {
		t.Errorf("offered %s while the only other address is declined", ip)
	}
	now = now.Add(declineHold + time.Second)
	if ip, ok := p.offer(mac(3), netip.Addr{}); !ok || ip.String() != "10.0.0.10" {
		t.Errorf("after the decline hold: %s %v", ip, ok)
	}
	// Offers reserve: another client is not offered the same address.
	if ip, ok := p.offer(mac(4), netip.Addr{}); ok {
		t.Errorf("offered %s, reserved for another client", ip)
	}
}

func TestPoolSaveFailureKeepsState(t *testing.T) {
	dir := t.TempDir()
	p, err := newPool(netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.20"), nil,
		filepath.Join(dir, "sub", "leases.json"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// The lease file's directory does not exist, so saving fails.
	if _, err := p.bind(mac(1), netip.MustParseAddr("10.0.0.10"), time.Hour, ""); err == nil {
		t.Fatal("bind succeeded without saving")
	}
	if l := p.leases(); len(l) != 0 {
		t.Errorf("unsaved lease kept: %v", l)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := p.bind(mac(1), netip.MustParseAddr("10.0.0.10"), time.Hour, "dev1"); err != nil {
		t.Fatal(err)
	}
	p2, err := newPool(netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.20"), nil,
		filepath.Join(dir, "sub", "leases.json"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if l := p2.leases(); len(l) != 1 || l[0].Hostname != "dev1" || l[0].MAC != mac(1).String() {
		t.Errorf("reloaded %v", l)
	}
	// A narrower range drops leases outside it instead of failing.
	p3, err := newPool(netip.MustParseAddr("10.0.0.15"), netip.MustParseAddr("10.0.0.20"), nil,
		filepath.Join(dir, "sub", "leases.json"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if l := p3.leases(); len(l) != 0 {
		t.Errorf("lease outside the new range kept: %v", l)
	}
}
