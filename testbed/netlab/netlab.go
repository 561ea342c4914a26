// Package netlab makes a private test network for a QEMU device and the line server: a network
// namespace holding a tap device with the server's address. The device's NIC is the tap, so
// the reference server's real DHCP, TFTP and HTTP answer it, and nothing leaves the namespace.
// It needs root (CI and the demo run as root).
package netlab

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// Lab is one namespace with one tap device.
type Lab struct {
	NS     string       // network namespace name
	Tap    string       // tap device inside NS, for QEMU's -netdev tap,ifname=
	Server netip.Prefix // the server's address on the tap, e.g. 10.77.0.1/24
	// Taps are all the taps, Tap first. With more than one they are ports of a bridge, Iface,
	// which holds the server's address (several guests on one line network).
	Taps []string
	// Iface is the interface holding Server: Tap, or the bridge when there are several taps.
	// The server's DHCP and TFTP listen on it.
	Iface string
	// HostSide and NSSide are the addresses of a veth pair between the host and the
	// namespace, when Config.Veth asked for one: the host reaches the server's HTTP (the
	// dashboard) at NSSide.
	HostSide, NSSide netip.Prefix
	hostVeth         string
}

// Config chooses names and addresses; zero fields take defaults.
type Config struct {
	NS     string
	Tap    string
	Server netip.Prefix
	// Veth adds a veth pair host <-> namespace (10.77.N.1/30 <-> 10.77.N.2/30, N chosen per
	// namespace so that labs side by side do not collide) so that a browser on the host can
	// open the server's dashboard.
	Veth bool
	// Taps is how many taps (guests) the namespace has; 0 means 1. Tap N+1 is named after
	// Tap with N appended (fltap01 ...).
	Taps int
}

// New creates the namespace and the tap. A stale namespace of the same name (from a run that
// was killed) is removed first.
func New(ctx context.Context, cfg Config) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("netlab: creating network namespaces needs root")
	}
	l := &Lab{NS: cfg.NS, Tap: cfg.Tap, Server: cfg.Server}
	if l.NS == "" {
		l.NS = fmt.Sprintf("flashline-%d", os.Getpid())
	}
	if l.Tap == "" {
		l.Tap = "fltap0"
	}
	if !l.Server.IsValid() {
		l.Server = netip.MustParsePrefix("10.77.0.1/24")
	}
	_ = run(ctx, "ip", "netns", "del", l.NS) // a leftover from a killed run
	steps := [][]string{
		{"ip", "netns", "add", l.NS},
		{"ip", "-n", l.NS, "link", "set", "lo", "up"},
	}
	l.Taps = []string{l.Tap}
	for i := 1; i < cfg.Taps; i++ {
		l.Taps = append(l.Taps, fmt.Sprintf("%s%d", l.Tap, i))
	}
	l.Iface = l.Tap
	if len(l.Taps) > 1 {
		l.Iface = "flbr0"
		steps = append(steps,
			[]string{"ip", "-n", l.NS, "link", "add", l.Iface, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
			[]string{"ip", "-n", l.NS, "link", "set", l.Iface, "up"})
	}
	for _, tap := range l.Taps {
		steps = append(steps, []string{"ip", "-n", l.NS, "tuntap", "add", "dev", tap, "mode", "tap"})
		if len(l.Taps) > 1 {
			steps = append(steps, []string{"ip", "-n", l.NS, "link", "set", tap, "master", l.Iface})
		}
		steps = append(steps, []string{"ip", "-n", l.NS, "link", "set", tap, "up"})
	}
	steps = append(steps, []string{"ip", "-n", l.NS, "addr", "add", l.Server.String(), "dev", l.Iface})
	if cfg.Veth {
		n := 100 + fnv32(l.NS)%150
		l.HostSide = netip.MustParsePrefix(fmt.Sprintf("10.77.%d.1/30", n))
		l.NSSide = netip.MustParsePrefix(fmt.Sprintf("10.77.%d.2/30", n))
		// Interface names are at most 15 bytes.
		l.hostVeth = fmt.Sprintf("flh%d", fnv32(l.NS)%1000000)
		_ = run(ctx, "ip", "link", "del", l.hostVeth)
		steps = append(steps,
			[]string{"ip", "link", "add", l.hostVeth, "type", "veth", "peer", "name", "flns0", "netns", l.NS},
			[]string{"ip", "addr", "add", l.HostSide.String(), "dev", l.hostVeth},
			[]string{"ip", "link", "set", l.hostVeth, "up"},
			[]string{"ip", "-n", l.NS, "addr", "add", l.NSSide.String(), "dev", "flns0"},
			[]string{"ip", "-n", l.NS, "link", "set", "flns0", "up"},
		)
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			l.Close()
			return nil, fmt.Errorf("netlab: %w", err)
		}
	}
	return l, nil
}

// ServerIP is the server's address without the prefix length.
func (l *Lab) ServerIP() string { return l.Server.Addr().String() }

// Command returns a command that runs inside the namespace.
func (l *Lab) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS, name}, args...)...)
}

// Wrap returns the argv prefix that runs a program inside the namespace (for harnesses that
// build their own command lines).
func (l *Lab) Wrap() []string { return []string{"ip", "netns", "exec", l.NS} }

// Close deletes the namespace and with it the tap and the veth pair.
func (l *Lab) Close() error {
	if l.hostVeth != "" {
		_ = run(context.Background(), "ip", "link", "del", l.hostVeth)
	}
	return run(context.Background(), "ip", "netns", "del", l.NS)
}

func run(ctx context.Context, name string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}
