// Package netup brings the device's network up: it finds the NIC the device netbooted from
// (BOOTIF from the kernel command line), or every NIC with a link when that is unknown, gets
// an IPv4 lease by DHCP and configures it. It never gives up by itself: the line is useless to
// a device without network, so it retries with capped exponential backoff, telling the
// operator on the console what it waits for, until its context ends.
//
// The NIC list and the DHCP exchange sit behind the Links and DHCP interfaces so that the
// selection and retry logic is tested with fakes; System and Client are the real ones.
package netup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/lineclient"
)

// Link is a network interface as netup sees it.
type Link struct {
	Name    string
	MAC     net.HardwareAddr
	Up      bool // administratively up
	Carrier bool // the PHY reports a link
}

// Lease is the IPv4 configuration a DHCP exchange got (and DHCP.Lease applied).
type Lease struct {
	Addr       net.IPNet
	Router     net.IP
	DNS        []net.IP
	ServerID   net.IP // the DHCP server that answered
	NextServer net.IP // siaddr: the boot server (TFTP) the DHCP server names
	BootFile   string
	TFTPServer string // option 66: the TFTP server's name or address

}

// Links lists and raises network interfaces.
type Links interface {
	List(ctx context.Context) ([]Link, error)
	SetUp(ctx context.Context, name string) error
}

// DHCP gets a lease on one link and configures the link with it. One call is one attempt;
// netup does the retrying.
type DHCP interface {
	Lease(ctx context.Context, l Link) (*Lease, error)
}

// Backoff yields the delays between rounds (lineclient.Backoff fits).
type Backoff interface {
	Next() time.Duration
	Reset()
}

// Config says which NIC to use and how to reach it.
type Config struct {
	// Iface names the NIC to use; it overrides BootIF.
	Iface string
	// BootIF is the MAC of the NIC the device netbooted from. When neither Iface nor BootIF
	// is set, every Ethernet NIC with carrier is tried.
	BootIF net.HardwareAddr

	Links   Links
	DHCP    DHCP
	Backoff Backoff
	// Sleep waits between rounds; nil means a timer that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// CarrierWait is how long to wait for a freshly raised NIC to report a link before trying
	// DHCP anyway (BOOTIF) or skipping it (fallback); zero means 5s.
	CarrierWait time.Duration
	// Poll is the interval for checking carrier; zero means 200ms.
	Poll time.Duration
	// Console receives progress lines; nil prints nothing.
	Console *console.Console
}

// Result is the configured NIC.
type Result struct {
	Link     Link
	Lease    Lease
	Attempts int // DHCP attempts made, successful one included
}

// String is the one-line summary printed on the console: "eth0 52:54:00:12:34:56 10.0.2.15/24".
func (r Result) String() string {
	return fmt.Sprintf("%s %s %s", r.Link.Name, r.Link.MAC, r.Lease.Addr.String())
}

// ErrNoNetwork is in the chain of Up's errors: the network did not come up (the cable, the
// line's DHCP server), so that the console can say what to check.
var ErrNoNetwork = errors.New("bring network up")

// Up brings the network up and returns the configured NIC. It returns an error only when ctx
// ends (or a required dependency is missing).
func Up(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Links == nil || cfg.DHCP == nil || cfg.Backoff == nil {
		return nil, errors.New("netup: Links, DHCP and Backoff are required")
	}
	if cfg.Sleep == nil {
		cfg.Sleep = lineclient.Sleep
	}
	if cfg.CarrierWait == 0 {
		cfg.CarrierWait = 5 * time.Second
	}
	if cfg.Poll == 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	c := cfg.Console
	want := cfg.describeWanted()
	c.Infof("network: looking for %s", want)
	attempts := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoNetwork, err)
		}
		res, reason := cfg.round(ctx, &attempts)
		if res != nil {
			return res, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoNetwork, err)
		}
		d := cfg.Backoff.Next()
		c.Warnf("network: %s; retrying in %s", reason, roundDuration(d))
		if err := cfg.Sleep(ctx, d); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoNetwork, err)
		}
	}
}

func (cfg *Config) describeWanted() string {
	switch {
	case cfg.Iface != "":
		return fmt.Sprintf("NIC %s (flashline.iface)", cfg.Iface)
	case cfg.BootIF != nil:
		return fmt.Sprintf("NIC %s (BOOTIF)", cfg.BootIF)
	default:
		return "any NIC with a link (no BOOTIF on the kernel command line)"
	}
}

// round makes one pass: find the candidates, raise them, try DHCP on each. It returns the
// result, or why it failed.
func (cfg *Config) round(ctx context.Context, attempts *int) (*Result, string) {
	c := cfg.Console
	links, err := cfg.Links.List(ctx)
	if err != nil {
		return nil, fmt.Sprintf("cannot list NICs: %v", err)
	}
	cands := cfg.candidates(links)
	if len(cands) == 0 {
		return nil, fmt.Sprintf("%s not found (present: %s)", cfg.describeWanted(), describe(links))
	}
	for _, l := range cands {
		if !l.Up {
			if err := cfg.Links.SetUp(ctx, l.Name); err != nil {
				c.Warnf("network: cannot bring %s up: %v", l.Name, err)
			}
		}
	}
	cands, err = cfg.waitCarrier(ctx, cands)
	if err != nil {
		return nil, err.Error()
	}
	explicit := cfg.Iface != "" || cfg.BootIF != nil
	var reasons []string
	for _, l := range cands {
		if !l.Carrier {
			if !explicit {
				continue
			}
			// Some NICs report no carrier until traffic flows, or lie: the chosen NIC is tried
			// anyway, the operator is told.
			c.Warnf("network: %s %s reports no link (cable?); trying DHCP anyway", l.Name, l.MAC)
		}
		*attempts++
		c.Infof("network: DHCP on %s %s", l.Name, l.MAC)
		lease, err := cfg.DHCP.Lease(ctx, l)
		if err == nil {
			cfg.Backoff.Reset()
			return &Result{Link: l, Lease: *lease, Attempts: *attempts}, ""
		}
		reasons = append(reasons, fmt.Sprintf("DHCP on %s failed: %v", l.Name, err))
	}
	if len(reasons) == 0 {
		return nil, fmt.Sprintf("no NIC has a link (cable?); present: %s", describe(links))
	}
	return nil, strings.Join(reasons, "; ")
}

// candidates returns the links to try, in a stable order.
func (cfg *Config) candidates(links []Link) []Link {
	var out []Link
	for _, l := range links {
		switch {
		case cfg.Iface != "":
			if l.Name == cfg.Iface {
				out = append(out, l)
			}
		case cfg.BootIF != nil:
			if bytes.Equal(l.MAC, cfg.BootIF) {
				out = append(out, l)
			}
		default:
			if isEthernet(l) {
				out = append(out, l)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// waitCarrier polls the candidates until all report carrier or CarrierWait passes, and
// returns their fresh state.
func (cfg *Config) waitCarrier(ctx context.Context, cands []Link) ([]Link, error) {
	// Count polls rather than read the clock, so that tests with a fake Sleep are exact.
	for waited := time.Duration(0); ; waited += cfg.Poll {
		links, err := cfg.Links.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot list NICs: %v", err)
		}
		byName := map[string]Link{}
		for _, l := range links {
			byName[l.Name] = l
		}
		fresh := make([]Link, 0, len(cands))
		all := true
		for _, c := range cands {
			if l, ok := byName[c.Name]; ok {
				fresh = append(fresh, l)
				all = all && l.Carrier
			}
		}
		if all || waited >= cfg.CarrierWait {
			return fresh, nil
		}
		if err := cfg.Sleep(ctx, cfg.Poll); err != nil {
			return nil, err
		}
	}
}

// isEthernet keeps real Ethernet-like NICs: a 6-byte unicast MAC, not loopback.
func isEthernet(l Link) bool {
	return len(l.MAC) == 6 && l.MAC[0]&1 == 0 && !bytes.Equal(l.MAC, make([]byte, 6)) && l.Name != "lo"
}

func describe(links []Link) string {
	var parts []string
	for _, l := range links {
		if l.Name == "lo" {
			continue
		}
		s := l.Name
		if len(l.MAC) > 0 {
			s += " " + l.MAC.String()
		}
		if l.Carrier {
			s += " (link)"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "no NICs at all: is the driver in the initramfs?"
	}
	return strings.Join(parts, ", ")
}

func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}
