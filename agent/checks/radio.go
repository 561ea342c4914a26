package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/probe/bluetooth"
	"github.com/flashline/flashline/agent/probe/rfkill"
	"github.com/flashline/flashline/agent/probe/wifi"
	"github.com/flashline/flashline/protocol"
	mwifi "github.com/mdlayher/wifi"
	"golang.org/x/sys/unix"
)

// radioKinds lists the radio check kinds with their kernel-backed implementations.
func radioKinds(sys System) []Kind {
	r := KernelRadios{RFKill: filepath.Join(sys.dev(), "rfkill")}
	return []Kind{WifiScan(r), WifiThroughput(r), BluetoothScan(r)}
}

// WifiProber runs the Wi-Fi probes.
type WifiProber interface {
	WifiScan(ctx context.Context, req wifi.ScanRequest) (wifi.ScanResult, error)
	WifiThroughput(ctx context.Context, req wifi.ThroughputRequest) (wifi.ThroughputResult, error)
}

// BluetoothProber runs Bluetooth discovery.
type BluetoothProber interface {
	BluetoothScan(ctx context.Context, req bluetooth.Request) (bluetooth.Result, error)
}

// KernelRadios probes the live system's radios: nl80211 for Wi-Fi, the
// Bluetooth management socket for Bluetooth.
type KernelRadios struct {
	// RFKill is the rfkill device ("/dev/rfkill" when empty).
	RFKill string
}

// WifiScan implements WifiProber.
func (k KernelRadios) WifiScan(ctx context.Context, req wifi.ScanRequest) (wifi.ScanResult, error) {
	k.unblock(rfkill.WLAN, req.Logger)
	c, err := wifi.NewKernelClient()
	if err != nil {
		return wifi.ScanResult{}, fmt.Errorf("%w: nl80211: %w", wifi.ErrNoInterface, err)
	}
	defer c.Close()
	return wifi.Scan(ctx, c, wifi.KernelLinks{}, req)
}

// WifiThroughput implements WifiProber.
func (k KernelRadios) WifiThroughput(ctx context.Context, req wifi.ThroughputRequest) (wifi.ThroughputResult, error) {
	k.unblock(rfkill.WLAN, req.Logger)
	c, err := mwifi.New()
	if err != nil {
		return wifi.ThroughputResult{}, fmt.Errorf("%w: nl80211: %w", wifi.ErrNoInterface, err)
	}
	defer c.Close()
	return wifi.Throughput(ctx, c, wifi.KernelLinks{}, wifi.KernelNetwork{}, req)
}

// unblock clears soft rfkill blocks, since many boards boot with their
// radios soft-blocked; a failure only means the probe may fail later.
func (k KernelRadios) unblock(t rfkill.Type, log *slog.Logger) {
	if err := rfkill.Unblock(k.RFKill, t); err != nil && log != nil {
		log.Warn("rfkill", "err", err)
	}
}

// BluetoothScan implements BluetoothProber.
func (k KernelRadios) BluetoothScan(ctx context.Context, req bluetooth.Request) (bluetooth.Result, error) {
	k.unblock(rfkill.Bluetooth, req.Logger)
	s, err := bluetooth.Dial()
	if errors.Is(err, unix.EAFNOSUPPORT) {
		return bluetooth.Result{}, fmt.Errorf("%w: the kernel has no Bluetooth support loaded", bluetooth.ErrNoController)
	}
	if err != nil {
		return bluetooth.Result{}, err
	}
	defer s.Close()
	return bluetooth.Scan(ctx, s, req)
}

// WifiScanParams configure wifi.scan.
type WifiScanParams struct {
	SSID         string `yaml:"ssid" json:"ssid" jsonschema:"description=Network name (SSID) the scan must find"`
	MinSignalDBm int    `yaml:"min_signal_dbm" json:"min_signal_dbm,omitempty" jsonschema:"minimum=-120,maximum=-1,description=Weakest acceptable signal in dBm; 0 or absent: any"`
	Interface    string `yaml:"interface" json:"interface,omitempty" jsonschema:"description=Wi-Fi interface (wlan0); empty: the first station interface"`
}

func validSSID(ssid string) []FieldError {
	if ssid == "" || len(ssid) > 32 {
		return []FieldError{{"ssid", "must be 1 to 32 bytes"}}
	}
	return nil
}

// WifiScan is wifi.scan: a Wi-Fi interface exists and a scan finds the SSID with a minimum signal.
func WifiScan(p WifiProber) Kind {
	return Define("wifi.scan", "A Wi-Fi interface exists and a scan (nl80211) finds the SSID, with at least min_signal_dbm.",
		nil,
		func(w WifiScanParams) []FieldError {
			errs := validSSID(w.SSID)
			if w.MinSignalDBm != 0 && (w.MinSignalDBm < -120 || w.MinSignalDBm > -1) {
				errs = append(errs, FieldError{"min_signal_dbm", "must be in [-120, -1] dBm"})
			}
			return errs
		},
		func(w WifiScanParams) Check {
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				req := wifi.ScanRequest{SSID: w.SSID, Interface: w.Interface, Logger: env.Log}
				if w.MinSignalDBm != 0 {
					req.MinSignalDBm = &w.MinSignalDBm
				}
				res, err := p.WifiScan(ctx, req)
				ms := []protocol.Measurement{Text("interface", orDash(res.Interface)), Num("scans", float64(res.Scans), ""), Num("scan_s", res.Elapsed.Round(time.Millisecond).Seconds(), "s")}
				if f := res.Found; f != nil {
					ms = append(ms, Num("signal_dbm", f.SignalDBm, "dBm"), Num("frequency_mhz", float64(f.FrequencyMHz), "MHz"), Text("bssid", f.BSSID.String()))
				}
				switch {
				case err == nil:
					return Passf(ms, "%q at %.0f dBm, %d MHz, BSSID %s on %s", w.SSID, res.Found.SignalDBm, res.Found.FrequencyMHz, res.Found.BSSID, res.Interface), nil
				case errors.Is(err, wifi.ErrNotFound), errors.Is(err, wifi.ErrNoInterface):
					return Failf(ms, "%v", err), nil
				}
				return Outcome{Measurements: ms}, err
			})
		})
}

// WifiThroughputParams configure wifi.throughput.
type WifiThroughputParams struct {
	SSID      string   `yaml:"ssid" json:"ssid" jsonschema:"description=Open (unencrypted) line AP to join"`
	Sink      string   `yaml:"sink" json:"sink" jsonschema:"description=TCP sink host:port on the line server, reached through the AP"`
	Duration  Duration `yaml:"duration" json:"duration,omitempty" jsonschema:"default=10s,description=How long to push data"`
	MinMbps   float64  `yaml:"min_mbps" json:"min_mbps,omitempty" jsonschema:"minimum=0,description=Least acceptable throughput in Mbit/s"`
	Interface string   `yaml:"interface" json:"interface,omitempty" jsonschema:"description=Wi-Fi interface (wlan0); empty: the first station interface"`
}

// WifiThroughput is wifi.throughput: join an open AP, DHCP, push TCP to a sink, check Mbit/s.
func WifiThroughput(p WifiProber) Kind {
	return Define("wifi.throughput", "Join an open line AP (kernel connect, no WPA), get an address by DHCP, push TCP to the sink for duration and pass above min_mbps.",
		func() WifiThroughputParams { return WifiThroughputParams{Duration: Duration(10 * time.Second)} },
		func(w WifiThroughputParams) []FieldError {
			errs := validSSID(w.SSID)
			if host, port, err := net.SplitHostPort(w.Sink); err != nil || host == "" || port == "" {
				errs = append(errs, FieldError{"sink", fmt.Sprintf("%q: want host:port", w.Sink)})
			}
			if w.Duration.D() < time.Second || w.Duration.D() > 10*time.Minute {
				errs = append(errs, FieldError{"duration", "must be between 1s and 10m"})
			}
			if w.MinMbps < 0 {
				errs = append(errs, FieldError{"min_mbps", "must not be negative"})
			}
			return errs
		},
		func(w WifiThroughputParams) Check {
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				res, err := p.WifiThroughput(ctx, wifi.ThroughputRequest{
					SSID: w.SSID, Sink: w.Sink, Duration: w.Duration.D(), MinMbps: w.MinMbps, Interface: w.Interface, Logger: env.Log,
				})
				ms := []protocol.Measurement{Text("interface", orDash(res.Interface))}
				if res.BSSID != nil {
					ms = append(ms, Text("bssid", res.BSSID.String()), Num("signal_dbm", res.SignalDBm, "dBm"), Num("frequency_mhz", float64(res.FrequencyMHz), "MHz"))
				}
				if res.Address.IsValid() {
					ms = append(ms, Text("address", res.Address.String()))
				}
				if res.Elapsed > 0 {
					ms = append(ms, Num("throughput_mbps", res.Mbps, "Mbit/s"), Num("bytes", float64(res.Bytes), "B"))
				}
				if err == nil {
					return Passf(ms, "%.1f Mbit/s to %s via %q (%s, %.0f dBm)", res.Mbps, w.Sink, w.SSID, res.Interface, res.SignalDBm), nil
				}
				// Association, DHCP and sink failures are the device's (or the
				// line's) fault, all worth a clear failure rather than an error.
				return Failf(ms, "%v", err), nil
			})
		})
}

// BluetoothScanParams configure bluetooth.scan.
type BluetoothScanParams struct {
	Address   string `yaml:"address" json:"address" jsonschema:"pattern=^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$,description=The control peer's Bluetooth address"`
	Discovery string `yaml:"discovery" json:"discovery,omitempty" jsonschema:"enum=bredr,enum=le,enum=both,default=both" jsonschema_description:"Discovery to run: classic inquiry (bredr), LE scan (le) or both"`
	MinRSSI   int    `yaml:"min_rssi" json:"min_rssi,omitempty" jsonschema:"minimum=-127,maximum=-1,description=Weakest acceptable RSSI in dBm; 0 or absent: any"`
}

var discoveries = map[string]bluetooth.Discovery{"bredr": bluetooth.BREDR, "le": bluetooth.LE, "both": bluetooth.Both}

// BluetoothScan is bluetooth.scan: a controller exists and discovery finds the address.
func BluetoothScan(p BluetoothProber) Kind {
	return Define("bluetooth.scan", "A Bluetooth controller exists and discovery (kernel management socket, no BlueZ) finds the address, BR/EDR or LE, with at least min_rssi.",
		func() BluetoothScanParams { return BluetoothScanParams{Discovery: "both"} },
		func(b BluetoothScanParams) []FieldError {
			var errs []FieldError
			if !ValidMAC(b.Address) {
				errs = append(errs, FieldError{"address", fmt.Sprintf("%q is not a Bluetooth address (C0:FF:EE:00:00:01)", b.Address)})
			}
			if _, ok := discoveries[b.Discovery]; !ok {
				errs = append(errs, FieldError{"discovery", fmt.Sprintf("%q: want bredr, le or both", b.Discovery)})
			}
			if b.MinRSSI != 0 && (b.MinRSSI < -127 || b.MinRSSI > -1) {
				errs = append(errs, FieldError{"min_rssi", "must be in [-127, -1] dBm"})
			}
			return errs
		},
		func(b BluetoothScanParams) Check {
			addr, _ := net.ParseMAC(b.Address)
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				req := bluetooth.Request{Address: addr, Kind: discoveries[b.Discovery], Logger: env.Log}
				if b.MinRSSI != 0 {
					req.MinRSSI = &b.MinRSSI
				}
				res, err := p.BluetoothScan(ctx, req)
				var ms []protocol.Measurement
				if res.Info.Address != nil {
					ms = append(ms, Text("controller", fmt.Sprintf("hci%d %s", res.Controller, strings.ToUpper(res.Info.Address.String()))))
				}
				if f := res.Found; f != nil {
					// 127 is "RSSI not available", not a level: no rssi_dbm measurement then.
					if f.RSSI != bluetooth.RSSIUnknown {
						ms = append(ms, Num("rssi_dbm", float64(f.RSSI), "dBm"))
					}
					ms = append(ms, Text("address_type", f.AddressType.String()))
					if f.Name != "" {
						ms = append(ms, Text("name", f.Name))
					}
				}
				switch {
				case err == nil:
					name := ""
					if res.Found.Name != "" {
						name = fmt.Sprintf(" %q", res.Found.Name)
					}
					at := fmt.Sprintf("at %d dBm", res.Found.RSSI)
					if res.Found.RSSI == bluetooth.RSSIUnknown {
						at = "(RSSI not reported)"
					}
					return Passf(ms, "%s%s (%s) %s on hci%d", strings.ToUpper(b.Address), name, res.Found.AddressType, at, res.Controller), nil
				case errors.Is(err, bluetooth.ErrNotFound), errors.Is(err, bluetooth.ErrNoController), errors.Is(err, bluetooth.ErrController):
					return Failf(ms, "%v", err), nil
				case ctx.Err() != nil:
					return Failf(ms, "Bluetooth discovery did not finish in time: %v", err), nil
				}
				return Outcome{Measurements: ms}, err
			})
		})
}
