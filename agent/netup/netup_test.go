package netup

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/console"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// fakeLinks is a NIC table whose carrier comes up a number of List calls after SetUp.
type fakeLinks struct {
	links     []Link
	carrierIn map[string]int // List calls after SetUp before carrier appears; -1 never
	appearAt  int            // List calls before any NIC exists (driver still probing)
	calls     int
	setUp     []string
	upAt      map[string]int
}

func (f *fakeLinks) List(ctx context.Context) ([]Link, error) {
	f.calls++
	if f.calls <= f.appearAt {
		return []Link{{Name: "lo"}}, nil
	}
	out := make([]Link, len(f.links))
	for i, l := range f.links {
		if at, ok := f.upAt[l.Name]; ok {
			l.Up = true
			if n := f.carrierIn[l.Name]; n >= 0 && f.calls-at >= n {
				l.Carrier = true
			}
		}
		out[i] = l
	}
	return out, nil
}

func (f *fakeLinks) SetUp(ctx context.Context, name string) error {
	f.setUp = append(f.setUp, name)
	if f.upAt == nil {
		f.upAt = map[string]int{}
	}
	f.upAt[name] = f.calls
	return nil
}

// fakeDHCP fails a number of times per NIC, then leases 10.0.2.15/24.
type fakeDHCP struct {
	failures map[string]int // remaining failures per NIC; -1 forever
	tried    []string
}

func (f *fakeDHCP) Lease(ctx context.Context, l Link) (*Lease, error) {
	f.tried = append(f.tried, l.Name)
	if n := f.failures[l.Name]; n != 0 {
		if n > 0 {
			f.failures[l.Name] = n - 1
		}
		return nil, errors.New("no DHCP answer within 3s x2")
	}
	return &Lease{Addr: net.IPNet{IP: net.IPv4(10, 0, 2, 15), Mask: net.CIDRMask(24, 32)}, Router: net.IPv4(10, 0, 2, 2)}, nil
}

// fakeBackoff doubles from 1s to 8s and records resets.
type fakeBackoff struct {
	n      int
	resets int
}

func (b *fakeBackoff) Next() time.Duration {
	d := time.Second << b.n
	if d > 8*time.Second {
		d = 8 * time.Second
	} else {
		b.n++
	}
	return d
}
func (b *fakeBackoff) Reset() { b.n = 0; b.resets++ }

type sleeps struct{ ds []time.Duration }

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.ds = append(s.ds, d)
	return nil
}

// backoffSleeps returns the sleeps longer than the carrier poll interval.
func (s *sleeps) backoffSleeps(poll time.Duration) []time.Duration {
	var out []time.Duration
	for _, d := range s.ds {
		if d != poll {
			out = append(out, d)
		}
	}
	return out
}

func TestUp(t *testing.T) {
	boot := mac("52:54:00:12:34:56")
	other := mac("52:54:00:aa:bb:cc")
	tests := []struct {
		name        string
		cfg         Config
		links       *fakeLinks
		dhcp        *fakeDHCP
		wantNIC     string
		wantBackoff []time.Duration
		wantConsole []string
		wantTried   []string
	}{
		{
			name:        "BOOTIF found, DHCP first time",
			cfg:         Config{BootIF: boot},
			links:       &fakeLinks{links: []Link{{Name: "lo"}, {Name: "eth0", MAC: other}, {Name: "eth1", MAC: boot}}, carrierIn: map[string]int{"eth1": 1}},
			dhcp:        &fakeDHCP{},
			wantNIC:     "eth1",
			wantTried:   []string{"eth1"},
			wantConsole: []string{"looking for NIC 52:54:00:12:34:56 (BOOTIF)", "DHCP on eth1 52:54:00:12:34:56"},
		},
		{
			name:        "DHCP retried with exponential backoff",
			cfg:         Config{BootIF: boot},
			links:       &fakeLinks{links: []Link{{Name: "eth0", MAC: boot}}},
			dhcp:        &fakeDHCP{failures: map[string]int{"eth0": 5}},
			wantNIC:     "eth0",
			wantBackoff: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second},
			wantTried:   []string{"eth0", "eth0", "eth0", "eth0", "eth0", "eth0"},
			wantConsole: []string{"WARN network: DHCP on eth0 failed: no DHCP answer within 3s x2; retrying in 1s", "retrying in 8s"},
		},
		{
			name:        "BOOTIF NIC appears late",
			cfg:         Config{BootIF: boot},
			links:       &fakeLinks{links: []Link{{Name: "eth0", MAC: boot}}, appearAt: 2},
			dhcp:        &fakeDHCP{},
			wantNIC:     "eth0",
			wantBackoff: []time.Duration{time.Second, 2 * time.Second},
			wantConsole: []string{"NIC 52:54:00:12:34:56 (BOOTIF) not found (present: no NICs at all: is the driver in the initramfs?); retrying in 1s"},
		},
		{
			name:        "no BOOTIF: only NICs with carrier are tried",
			cfg:         Config{},
			links:       &fakeLinks{links: []Link{{Name: "lo", MAC: make(net.HardwareAddr, 6)}, {Name: "eth0", MAC: other}, {Name: "eth1", MAC: boot}}, carrierIn: map[string]int{"eth0": -1, "eth1": 2}},
			dhcp:        &fakeDHCP{},
			wantNIC:     "eth1",
			wantTried:   []string{"eth1"},
			wantConsole: []string{"looking for any NIC with a link (no BOOTIF on the kernel command line)"},
		},
		{
			name:      "no BOOTIF: falls through to the next NIC",
			cfg:       Config{},
			links:     &fakeLinks{links: []Link{{Name: "eth0", MAC: other}, {Name: "eth1", MAC: boot}}},
			dhcp:      &fakeDHCP{failures: map[string]int{"eth0": -1}},
			wantNIC:   "eth1",
			wantTried: []string{"eth0", "eth1"},
		},
		{
			name:        "no BOOTIF and no link anywhere",
			cfg:         Config{},
			links:       &fakeLinks{links: []Link{{Name: "eth0", MAC: other, Carrier: false}}, carrierIn: map[string]int{"eth0": -1}},
			dhcp:        &fakeDHCP{},
			wantConsole: []string{"no NIC has a link (cable?); present: eth0 52:54:00:aa:bb:cc; retrying in 1s"},
		},
		{
			name:        "BOOTIF without carrier is tried anyway",
			cfg:         Config{BootIF: boot},
			links:       &fakeLinks{links: []Link{{Name: "eth0", MAC: boot}}, carrierIn: map[string]int{"eth0": -1}},
			dhcp:        &fakeDHCP{},
			wantNIC:     "eth0",
			wantConsole: []string{"eth0 52:54:00:12:34:56 reports no link (cable?); trying DHCP anyway"},
		},
		{
			name:    "flashline.iface overrides BOOTIF",
			cfg:     Config{Iface: "eth0", BootIF: boot},
			links:   &fakeLinks{links: []Link{{Name: "eth0", MAC: other}, {Name: "eth1", MAC: boot}}},
			dhcp:    &fakeDHCP{},
			wantNIC: "eth0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			var sl sleeps
			bo := &fakeBackoff{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg := tt.cfg
			cfg.Links, cfg.DHCP, cfg.Backoff = tt.links, tt.dhcp, bo
			cfg.Console = console.New(&out)
			cfg.Poll = 100 * time.Millisecond
			cfg.CarrierWait = time.Second
			cfg.Sleep = func(ctx context.Context, d time.Duration) error {
				// A test that never gets a lease ends after a few rounds.
				if len(sl.backoffSleeps(cfg.Poll)) >= 3 && tt.wantNIC == "" {
					cancel()
				}
				return sl.sleep(ctx, d)
			}
			res, err := Up(ctx, cfg)
			if tt.wantNIC == "" {
				if err == nil {
					t.Fatalf("Up = %v, want an error once cancelled", res)
				}
			} else {
				if err != nil {
					t.Fatalf("Up: %v\n%s", err, out.String())
				}
				if res.Link.Name != tt.wantNIC {
					t.Errorf("NIC = %s, want %s", res.Link.Name, tt.wantNIC)
				}
				if got := res.String(); !strings.HasSuffix(got, "10.0.2.15/24") {
					t.Errorf("summary %q", got)
				}
				if bo.resets != 1 {
					t.Errorf("backoff reset %d times after success, want 1", bo.resets)
				}
			}
			if tt.wantBackoff != nil {
				got := sl.backoffSleeps(cfg.Poll)
				if len(got) != len(tt.wantBackoff) {
					t.Errorf("backoff sleeps %v, want %v", got, tt.wantBackoff)
				} else {
					for i := range got {
						if got[i] != tt.wantBackoff[i] {
							t.Errorf("backoff sleeps %v, want %v", got, tt.wantBackoff)
							break
						}
					}
				}
			}
			if tt.wantTried != nil && strings.Join(tt.dhcp.tried, ",") != strings.Join(tt.wantTried, ",") {
				t.Errorf("DHCP tried on %v, want %v", tt.dhcp.tried, tt.wantTried)
			}
			for _, w := range tt.wantConsole {
				if !strings.Contains(out.String(), w) {
					t.Errorf("console lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestCarrierWaitIsBounded(t *testing.T) {
	links := &fakeLinks{links: []Link{{Name: "eth0", MAC: mac("52:54:00:12:34:56")}}, carrierIn: map[string]int{"eth0": -1}}
	var sl sleeps
	cfg := Config{BootIF: mac("52:54:00:12:34:56"), Links: links, DHCP: &fakeDHCP{}, Backoff: &fakeBackoff{},
		Sleep: sl.sleep, Poll: 200 * time.Millisecond, CarrierWait: time.Second}
	if _, err := Up(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if n := len(sl.ds); n != 5 {
		t.Errorf("polled carrier %d times, want 5 (1s / 200ms)", n)
	}
}

func TestUpNeedsDependencies(t *testing.T) {
	if _, err := Up(context.Background(), Config{}); err == nil {
		t.Error("Up without Links/DHCP/Backoff succeeded")
	}
}
