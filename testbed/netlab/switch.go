package netlab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Switch is a virtual line segment: a namespace holding one Linux bridge, and hosts, each in
// a namespace of its own, cabled to the bridge by a veth pair. Each cable is shaped with tc
// (tbf) in both directions, so a host's link and the server's uplink have the rates of a real
// line, scaled to what the machine can carry. It needs root.
type Switch struct {
	NS     string // the bridge's namespace
	prefix string

	mu    sync.Mutex
	hosts []*Host
}

// Host is one machine on the switch.
type Host struct {
	NS   string       // its network namespace
	Dev  string       // its interface inside NS
	Addr netip.Prefix // its address on Dev
	Rate int64        // the cable's rate in bit/s in each direction; 0 means unshaped
	sw   *Switch
	port string // the cable's end in the bridge's namespace
}

// NewSwitch creates the bridge namespace "<prefix>-br". Hosts are named "<prefix>-<name>";
// leftovers of a killed run with the same prefix are removed first.
func NewSwitch(ctx context.Context, prefix string) (*Switch, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("netlab: creating network namespaces needs root")
	}
	s := &Switch{NS: prefix + "-br", prefix: prefix}
	RemoveStale(ctx, prefix)
	steps := [][]string{
		{"ip", "netns", "add", s.NS},
		{"ip", "-n", s.NS, "link", "set", "lo", "up"},
		{"ip", "-n", s.NS, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"ip", "-n", s.NS, "link", "set", "br0", "up"},
	}
	for _, st := range steps {
		if err := run(ctx, st[0], st[1:]...); err != nil {
			s.Close()
			return nil, fmt.Errorf("netlab: switch: %w", err)
		}
	}
	return s, nil
}

// RemoveStale deletes every namespace whose name starts with "<prefix>-" (what a killed run
// of NewSwitch with this prefix left behind).
func RemoveStale(ctx context.Context, prefix string) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, prefix+"-") {
			_ = run(ctx, "ip", "netns", "del", name)
		}
	}
}

// AddHost creates namespace "<prefix>-<name>" with interface eth0 at addr, cabled to the
// bridge and shaped to rate bit/s each way (0: unshaped). The host is reachable from every
// other host on the switch as soon as AddHost returns.
func (s *Switch) AddHost(ctx context.Context, name string, addr netip.Prefix, rate int64) (*Host, error) {
	s.mu.Lock()
	port := "p" + strconv.Itoa(len(s.hosts))
	h := &Host{NS: s.prefix + "-" + name, Dev: "eth0", Addr: addr, Rate: rate, sw: s, port: port}
	s.hosts = append(s.hosts, h)
	s.mu.Unlock()
	steps := [][]string{
		{"ip", "netns", "add", h.NS},
		{"ip", "-n", h.NS, "link", "set", "lo", "up"},
		{"ip", "-n", s.NS, "link", "add", port, "type", "veth", "peer", "name", h.Dev, "netns", h.NS},
		{"ip", "-n", s.NS, "link", "set", port, "master", "br0"},
		{"ip", "-n", s.NS, "link", "set", port, "up"},
		{"ip", "-n", h.NS, "addr", "add", addr.String(), "dev", h.Dev},
		{"ip", "-n", h.NS, "link", "set", h.Dev, "up"},
	}
	if rate > 0 {
		steps = append(steps, tbf(h.NS, h.Dev, rate), tbf(s.NS, port, rate))
	}
	for _, st := range steps {
		if err := run(ctx, st[0], st[1:]...); err != nil {
			return nil, fmt.Errorf("netlab: host %s: %w", name, err)
		}
	}
	return h, nil
}

// tbf is the tc command that limits dev's egress to rate bit/s. The bucket holds about 2 ms
// at that rate but never less than 64 KiB (a GSO packet of veth); the queue holds 20 ms, like
// a switch port's buffer, so TCP sees drops and backs off instead of filling a deep queue.
func tbf(ns, dev string, rate int64) []string {
	burst := max(rate/8/500, 64<<10)
	return []string{"tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
		"rate", strconv.FormatInt(rate, 10) + "bit", "burst", strconv.FormatInt(burst, 10), "latency", "20ms"}
}

// IP is the host's address without the prefix length.
func (h *Host) IP() string { return h.Addr.Addr().String() }

// Command returns a command that runs inside the host's namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// TxBytes is what the host has sent on its cable so far: its interface's tx_bytes, read from
// the bridge side (the peer's rx_bytes), which counts every protocol alike.
func (h *Host) TxBytes(ctx context.Context) (int64, error) {
	return h.sw.portCounter(ctx, h.port, "rx_bytes")
}

// RxBytes is what the host has received on its cable so far.
func (h *Host) RxBytes(ctx context.Context) (int64, error) {
	return h.sw.portCounter(ctx, h.port, "tx_bytes")
}

func (s *Switch) portCounter(ctx context.Context, port, counter string) (int64, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.NS, "cat", "/sys/class/net/"+port+"/statistics/"+counter)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("netlab: reading %s of %s: %w", counter, port, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("netlab: reading %s of %s: %w", counter, port, err)
	}
	return n, nil
}

// Unplug sets the host's cable down on the bridge side: packets to and from the host are
// dropped from now on, as when a device is unplugged or loses power.
func (h *Host) Unplug(ctx context.Context) error {
	return run(ctx, "ip", "-n", h.sw.NS, "link", "set", h.port, "down")
}

// Plug sets the host's cable up again.
func (h *Host) Plug(ctx context.Context) error {
	return run(ctx, "ip", "-n", h.sw.NS, "link", "set", h.port, "up")
}

// Close deletes every host's namespace and the bridge's; the veth pairs go with them.
func (s *Switch) Close() error {
	s.mu.Lock()
	hosts := s.hosts
	s.hosts = nil
	s.mu.Unlock()
	var first error
	for _, h := range hosts {
		if err := run(context.Background(), "ip", "netns", "del", h.NS); err != nil && first == nil {
			first = err
		}
	}
	if err := run(context.Background(), "ip", "netns", "del", s.NS); err != nil && first == nil {
		first = err
	}
	return first
}
