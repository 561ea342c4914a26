package wifi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/flashline/flashline/protocol/sink"
	mwifi "github.com/mdlayher/wifi"
	"golang.org/x/sys/unix"
)

// Network is the IP side of a throughput test: address the interface by
// DHCP, open a TCP connection that leaves through it, and clean up.
type Network interface {
	// DHCP obtains and configures an IPv4 address on ifname.
	DHCP(ctx context.Context, ifname string) (netip.Prefix, error)
	// Dial connects to addr (host:port) through ifname only, so the test
	// never measures the wired link by mistake.
	Dial(ctx context.Context, ifname string, local netip.Addr, addr string) (net.Conn, error)
	// Release removes what DHCP configured.
	Release(ifname string, p netip.Prefix) error
}

// ThroughputRequest says which AP to join and what to measure.
type ThroughputRequest struct {
	SSID string
	// Sink is the TCP sink's host:port (see package sink).
	Sink string
	// Duration of the push.
	Duration time.Duration
	// MinMbps is the least acceptable throughput.
	MinMbps   float64
	Interface string
	// AssociateTimeout bounds joining the AP (default 15 s).
	AssociateTimeout time.Duration
	InterfaceWait    time.Duration
	Logger           *slog.Logger
}

// ThroughputResult is what Throughput measured.
type ThroughputResult struct {
	Interface    string
	BSSID        net.HardwareAddr
	FrequencyMHz int
	SignalDBm    float64
	Address      netip.Prefix
	Bytes        int64
	Elapsed      time.Duration
	Mbps         float64
}

// ErrTooSlow means the push worked but was below MinMbps.
var ErrTooSlow = errors.New("throughput below minimum")

// Throughput joins the open AP req.SSID (the kernel's own connect: no
// supplicant, so no WPA), gets an address by DHCP, pushes TCP to the sink
// for req.Duration and checks the rate. It disconnects afterwards.
func Throughput(ctx context.Context, c Client, links Links, nw Network, req ThroughputRequest) (ThroughputResult, error) {
	var res ThroughputResult
	if req.SSID == "" || req.Sink == "" || req.Duration <= 0 {
		return res, errors.New("wifi throughput: SSID, sink and duration are required")
	}
	if req.AssociateTimeout == 0 {
		req.AssociateTimeout = 15 * time.Second
	}
	log := req.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ifi, err := upStation(ctx, c, links, req.Interface, req.InterfaceWait)
	if ifi != nil {
		res.Interface = ifi.Name
	}
	if err != nil {
		return res, err
	}
	// A previous step may have left a connection; start clean.
	_ = c.Disconnect(ifi)
	bss, err := associate(ctx, c, ifi, req.SSID, req.AssociateTimeout)
	defer func() { _ = c.Disconnect(ifi) }()
	if err != nil {
		return res, err
	}
	res.BSSID, res.FrequencyMHz, res.SignalDBm = bss.BSSID, bss.Frequency, float64(bss.Signal)/100
	log.Info("wifi: associated", "interface", ifi.Name, "ssid", req.SSID, "bssid", bss.BSSID.String())

	addr, err := nw.DHCP(ctx, ifi.Name)
	if err != nil {
		return res, fmt.Errorf("DHCP on %s (joined %q): %w", ifi.Name, req.SSID, err)
	}
	res.Address = addr
	defer func() { _ = nw.Release(ifi.Name, addr) }()
	conn, err := nw.Dial(ctx, ifi.Name, addr.Addr(), req.Sink)
	if err != nil {
		return res, fmt.Errorf("connect to sink %s over %s: %w", req.Sink, ifi.Name, err)
	}
	defer conn.Close()
	r, err := sink.Push(ctx, conn, req.Duration)
	if err != nil {
		return res, fmt.Errorf("push to %s over %s: %w", req.Sink, ifi.Name, err)
	}
	res.Bytes, res.Elapsed, res.Mbps = r.Bytes, r.Elapsed, r.Mbps
	if r.Mbps < req.MinMbps {
		return res, fmt.Errorf("%w: %.1f Mbit/s to %s via %q, want at least %.1f", ErrTooSlow, r.Mbps, req.Sink, req.SSID, req.MinMbps)
	}
	return res, nil
}

// associate asks the kernel to connect and waits until the interface is
// associated with a BSS of that SSID.
func associate(ctx context.Context, c Client, ifi *mwifi.Interface, ssid string, timeout time.Duration) (*mwifi.BSS, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lastConnect := time.Time{}
	for {
		// The kernel gives up after a few failed attempts (AP not found in
		// its scan); ask again every few seconds.
		if time.Since(lastConnect) > 5*time.Second {
			// EALREADY, EINPROGRESS: the previous connect is still running.
			if err := c.Connect(ifi, ssid); err != nil && !errors.Is(err, unix.EALREADY) && !errors.Is(err, unix.EINPROGRESS) {
				return nil, fmt.Errorf("connect %s to %q: %w", ifi.Name, ssid, err)
			}
			lastConnect = time.Now()
		}
		bss, err := c.BSS(ifi)
		if err == nil && bss != nil && bss.Status == mwifi.BSSStatusAssociated && bss.SSID == ssid {
			return bss, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s did not associate with %q within %v (open network expected; WPA needs a supplicant)", ifi.Name, ssid, timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
