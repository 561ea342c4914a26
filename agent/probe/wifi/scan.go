// Package wifi checks a device's Wi-Fi through nl80211 (mdlayher/wifi) with
// no supplicant: Scan finds an SSID with a minimum signal, Throughput joins
// an open AP, gets an address by DHCP and measures TCP throughput to a sink.
package wifi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	mwifi "github.com/mdlayher/wifi"
)

// Client is the part of *mdlayher/wifi.Client the probes use.
type Client interface {
	Interfaces() ([]*mwifi.Interface, error)
	Scan(ctx context.Context, ifi *mwifi.Interface) error
	AccessPoints(ifi *mwifi.Interface) ([]*mwifi.BSS, error)
	Connect(ifi *mwifi.Interface, ssid string) error
	Disconnect(ifi *mwifi.Interface) error
	BSS(ifi *mwifi.Interface) (*mwifi.BSS, error)
}

// Links brings interfaces up.
type Links interface {
	SetUp(index int, up bool) error
}

// ErrNoInterface means no station-capable Wi-Fi interface exists.
var ErrNoInterface = errors.New("no Wi-Fi interface")

// ErrNotFound means scans ran until the deadline without finding the SSID
// (or only below the minimum signal).
var ErrNotFound = errors.New("SSID not found")

// ScanRequest says what a scan must find.
type ScanRequest struct {
	SSID string
	// MinSignalDBm, when set, is the weakest acceptable signal.
	MinSignalDBm *int
	// Interface limits the scan to one interface name; empty means the first
	// station interface.
	Interface string
	// InterfaceWait is how long to wait for an interface to appear (drivers
	// and firmware load asynchronously at boot); default 5 s.
	InterfaceWait time.Duration
	Logger        *slog.Logger
}

// BSS is one access point as measured.
type BSS struct {
	SSID         string
	BSSID        net.HardwareAddr
	FrequencyMHz int
	SignalDBm    float64
}

// ScanResult is what Scan measured; it is filled as far as the scan got,
// also on failure.
type ScanResult struct {
	Interface string
	// Found is the strongest report of the SSID.
	Found *BSS
	// Seen is every SSID heard, strongest report each, for failure messages.
	Seen  []BSS
	Scans int
	// Elapsed is the time from the first scan to the SSID heard (or to giving up).
	Elapsed time.Duration
}

// station picks the interface to use.
// upStation finds the station interface (as station does) and brings its link up: every
// check starts from there.
func upStation(ctx context.Context, c Client, links Links, name string, wait time.Duration) (*mwifi.Interface, error) {
	ifi, err := station(ctx, c, name, wait)
	if err != nil {
		return nil, err
	}
	if err := links.SetUp(ifi.Index, true); err != nil {
		// The interface is still returned: the failed step names it in its measurements.
		return ifi, fmt.Errorf("bring %s up: %w", ifi.Name, err)
	}
	return ifi, nil
}

func station(ctx context.Context, c Client, name string, wait time.Duration) (*mwifi.Interface, error) {
	if wait == 0 {
		wait = 5 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		ifis, err := c.Interfaces()
		if err != nil {
			return nil, fmt.Errorf("list Wi-Fi interfaces: %w", err)
		}
		slices.SortFunc(ifis, func(a, b *mwifi.Interface) int { return strings.Compare(a.Name, b.Name) })
		var others []string
		for _, ifi := range ifis {
			if ifi.Name == "" || ifi.Index == 0 {
				continue // a P2P device has no netdev
			}
			if name != "" && ifi.Name != name {
				continue
			}
			if ifi.Type == mwifi.InterfaceTypeStation || ifi.Type == mwifi.InterfaceTypeUnspecified {
				return ifi, nil
			}
			others = append(others, fmt.Sprintf("%s (%s)", ifi.Name, ifi.Type))
		}
		if time.Now().After(deadline) {
			what := "any"
			if name != "" {
				what = name
			}
			if len(others) > 0 {
				return nil, fmt.Errorf("%w: %s station interface wanted, only %s", ErrNoInterface, what, strings.Join(others, ", "))
			}
			return nil, fmt.Errorf("%w (%s; waited %v)", ErrNoInterface, what, wait)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNoInterface, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Scan brings the interface up and scans until req.SSID is heard with at
// least req.MinSignalDBm or ctx ends.
func Scan(ctx context.Context, c Client, links Links, req ScanRequest) (ScanResult, error) {
	var res ScanResult
	if req.SSID == "" {
		return res, errors.New("wifi scan: no SSID")
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
	seen := map[string]int{}
	start := time.Now()
	// look reads the kernel's BSS table; it reports whether the SSID was heard well enough.
	look := func() (bool, error) {
		aps, err := c.AccessPoints(ifi)
		if err != nil {
			return false, fmt.Errorf("read scan results of %s: %w", ifi.Name, err)
		}
		for _, ap := range aps {
			// The kernel keeps results for a while: only what was heard
			// since this probe began counts (a failed or aborted scan
			// must not pass on an earlier step's results).
			if ap.LastSeen > time.Since(start) {
				continue
			}
			b := BSS{SSID: ap.SSID, BSSID: ap.BSSID, FrequencyMHz: ap.Frequency, SignalDBm: float64(ap.Signal) / 100}
			if i, ok := seen[b.SSID]; !ok {
				seen[b.SSID] = len(res.Seen)
				res.Seen = append(res.Seen, b)
			} else if b.SignalDBm > res.Seen[i].SignalDBm {
				res.Seen[i] = b
			}
			if b.SSID != req.SSID {
				continue
			}
			if res.Found == nil || b.SignalDBm > res.Found.SignalDBm {
				found := b
				res.Found = &found
			}
		}
		return res.Found != nil && (req.MinSignalDBm == nil || res.Found.SignalDBm >= float64(*req.MinSignalDBm)), nil
	}
	for {
		res.Scans++
		found, serr, err := scanOnce(ctx, c, ifi, req.SSID, look)
		res.Elapsed = time.Since(start)
		if err != nil {
			return res, err
		}
		if found {
			log.Debug("wifi: heard", "ssid", req.SSID, "interface", ifi.Name, "scans", res.Scans, "after", res.Elapsed)
			return res, nil
		}
		if serr != nil && ctx.Err() == nil {
			// Busy (a scan of the kernel's own) or aborted: the cached results
			// were looked at anyway; try again.
			log.Debug("wifi: scan", "interface", ifi.Name, "err", serr)
		}
		if ctx.Err() != nil {
			return res, notFound(res, req)
		}
		if serr != nil {
			// Don't spin on a failing scan.
			select {
			case <-ctx.Done():
				return res, notFound(res, req)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// DirectedScanner is implemented by clients that can probe for one SSID by name (an active
// scan with that SSID in the probe requests, as a supplicant does) instead of the wildcard.
type DirectedScanner interface {
	ScanSSID(ctx context.Context, ifi *mwifi.Interface, ssid string) error
}

// ScanAborter is implemented by clients that can stop a running scan.
type ScanAborter interface {
	AbortScan(ifi *mwifi.Interface) error
}

// pollEvery is how often the BSS table is read while a scan runs. cfg80211 adds a BSS the
// moment its beacon or probe response arrives, so the SSID is seen on its own channel,
// not after every channel of every band has been visited.
const pollEvery = 100 * time.Millisecond

// scanOnce runs one scan and reads the results while it runs; as soon as look reports the
// SSID it aborts the scan and returns found. serr is the scan's own error (busy, aborted),
// err one that ends the probe.
func scanOnce(ctx context.Context, c Client, ifi *mwifi.Interface, ssid string, look func() (bool, error)) (found bool, serr, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		if d, ok := c.(DirectedScanner); ok {
			done <- d.ScanSSID(sctx, ifi, ssid)
			return
		}
		done <- c.Scan(sctx, ifi)
	}()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case serr = <-done:
			found, err = look()
			return found, serr, err
		case <-tick.C:
			if found, err = look(); err != nil || !found {
				if err != nil {
					cancel()
					<-done
					return false, nil, err
				}
				continue
			}
			cancel()
			if a, ok := c.(ScanAborter); ok {
				// Best effort: a scan that has just ended cannot be aborted.
				_ = a.AbortScan(ifi)
			}
			<-done
			return true, nil, nil
		}
	}
}

func notFound(res ScanResult, req ScanRequest) error {
	if res.Found != nil && req.MinSignalDBm != nil {
		return fmt.Errorf("%w: %q heard at %.0f dBm (%s, %d MHz), below the minimum %d dBm",
			ErrNotFound, req.SSID, res.Found.SignalDBm, res.Found.BSSID, res.Found.FrequencyMHz, *req.MinSignalDBm)
	}
	var seen []string
	for _, b := range res.Seen {
		seen = append(seen, fmt.Sprintf("%q (%.0f dBm)", b.SSID, b.SignalDBm))
	}
	slices.Sort(seen)
	s := "nothing"
	if len(seen) > 0 {
		s = strings.Join(seen, ", ")
	}
	return fmt.Errorf("%w: %q not heard on %s in %d scan(s); heard %s", ErrNotFound, req.SSID, res.Interface, res.Scans, s)
}
