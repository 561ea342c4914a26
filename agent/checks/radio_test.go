package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/probe/bluetooth"
	"github.com/flashline/flashline/agent/probe/wifi"
)

type fakeRadios struct {
	scan    wifi.ScanResult
	scanErr error
	tp      wifi.ThroughputResult
	tpErr   error
	bt      bluetooth.Result
	btErr   error

	gotScan wifi.ScanRequest
	gotBT   bluetooth.Request
}

func (f *fakeRadios) WifiScan(_ context.Context, req wifi.ScanRequest) (wifi.ScanResult, error) {
	f.gotScan = req
	return f.scan, f.scanErr
}

func (f *fakeRadios) WifiThroughput(context.Context, wifi.ThroughputRequest) (wifi.ThroughputResult, error) {
	return f.tp, f.tpErr
}

func (f *fakeRadios) BluetoothScan(_ context.Context, req bluetooth.Request) (bluetooth.Result, error) {
	f.gotBT = req
	return f.bt, f.btErr
}

func runKind(t *testing.T, k Kind, params any) (Outcome, error) {
	t.Helper()
	if errs := k.Validate(params); len(errs) > 0 {
		t.Fatalf("params rejected: %v", errs)
	}
	c, err := k.New(params)
	if err != nil {
		t.Fatal(err)
	}
	return c.Run(context.Background(), &Env{Log: slog.New(slog.DiscardHandler), Operator: NopOperator{}})
}

func TestRadioValidation(t *testing.T) {
	f := &fakeRadios{}
	tests := []struct {
		kind   Kind
		params any
		field  string
	}{
		{WifiScan(f), &WifiScanParams{}, "ssid"},
		{WifiScan(f), &WifiScanParams{SSID: "A", MinSignalDBm: -200}, "min_signal_dbm"},
		{WifiScan(f), &WifiScanParams{SSID: "A", MinSignalDBm: 5}, "min_signal_dbm"},
		{WifiThroughput(f), &WifiThroughputParams{SSID: "A", Sink: "nohostport", Duration: Duration(time.Second)}, "sink"},
		{WifiThroughput(f), &WifiThroughputParams{SSID: "A", Sink: "10.0.0.1:9", Duration: 0}, "duration"},
		{WifiThroughput(f), &WifiThroughputParams{SSID: "A", Sink: "10.0.0.1:9", Duration: Duration(time.Second), MinMbps: -1}, "min_mbps"},
		{BluetoothScan(f), &BluetoothScanParams{Address: "C0:FF:EE", Discovery: "both"}, "address"},
		{BluetoothScan(f), &BluetoothScanParams{Address: "C0:FF:EE:00:00:01", Discovery: "classic"}, "discovery"},
		{BluetoothScan(f), &BluetoothScanParams{Address: "C0:FF:EE:00:00:01", Discovery: "le", MinRSSI: 3}, "min_rssi"},
	}
	for _, tt := range tests {
		errs := tt.kind.Validate(tt.params)
		if len(errs) != 1 || errs[0].Field != tt.field {
			t.Errorf("%s %+v: errors %v, want one on %s", tt.kind.Name(), tt.params, errs, tt.field)
		}
	}
	// Defaults are valid once the required keys are there.
	p := BluetoothScan(f).NewParams().(*BluetoothScanParams)
	p.Address = "c0:ff:ee:00:00:01"
	if errs := BluetoothScan(f).Validate(p); len(errs) != 0 {
		t.Errorf("default bluetooth params: %v", errs)
	}
	w := WifiThroughput(f).NewParams().(*WifiThroughputParams)
	w.SSID, w.Sink = "LINE", "192.168.77.1:5201"
	if errs := WifiThroughput(f).Validate(w); len(errs) != 0 || w.Duration.D() != 10*time.Second {
		t.Errorf("default throughput params: %v %v", errs, w.Duration)
	}
}

func TestWifiScanOutcomes(t *testing.T) {
	found := &wifi.BSS{SSID: "LINE-TEST", BSSID: net.HardwareAddr{2, 0, 0, 0, 1, 0}, FrequencyMHz: 2412, SignalDBm: -30}
	tests := []struct {
		name   string
		res    wifi.ScanResult
		err    error
		pass   bool
		runErr bool
		reason string
	}{
		{"pass", wifi.ScanResult{Interface: "wlan0", Found: found, Scans: 1}, nil, true, false, `"LINE-TEST" at -30 dBm, 2412 MHz, BSSID 02:00:00:00:01:00 on wlan0`},
		{"not found", wifi.ScanResult{Interface: "wlan0", Scans: 3}, fmt.Errorf("%w: not heard", wifi.ErrNotFound), false, false, "SSID not found: not heard"},
		{"no interface", wifi.ScanResult{}, wifi.ErrNoInterface, false, false, "no Wi-Fi interface"},
		{"socket error", wifi.ScanResult{}, errors.New("permission denied"), false, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRadios{scan: tt.res, scanErr: tt.err}
			out, err := runKind(t, WifiScan(f), &WifiScanParams{SSID: "LINE-TEST", MinSignalDBm: -65})
			if (err != nil) != tt.runErr {
				t.Fatalf("err = %v", err)
			}
			if tt.runErr {
				return
			}
			if out.Pass != tt.pass || !strings.Contains(out.Reason, tt.reason) {
				t.Errorf("outcome %+v", out)
			}
			if f.gotScan.MinSignalDBm == nil || *f.gotScan.MinSignalDBm != -65 {
				t.Errorf("min signal not passed on: %+v", f.gotScan)
			}
			if tt.pass && len(out.Measurements) != 6 {
				t.Errorf("measurements %+v", out.Measurements)
			}
		})
	}
}

func TestWifiThroughputOutcomes(t *testing.T) {
	res := wifi.ThroughputResult{Interface: "wlan0", BSSID: net.HardwareAddr{2, 0, 0, 0, 1, 0}, SignalDBm: -30, FrequencyMHz: 2412,
		Address: netip.MustParsePrefix("192.168.77.100/24"), Bytes: 1 << 20, Elapsed: time.Second, Mbps: 8.4}
	f := &fakeRadios{tp: res}
	params := &WifiThroughputParams{SSID: "LINE-TEST", Sink: "192.168.77.1:5201", Duration: Duration(5 * time.Second), MinMbps: 5}
	out, err := runKind(t, WifiThroughput(f), params)
	if err != nil || !out.Pass || !strings.Contains(out.Reason, "8.4 Mbit/s") {
		t.Fatalf("pass case: %+v %v", out, err)
	}
	f.tpErr = fmt.Errorf("%w: 2.0 Mbit/s", wifi.ErrTooSlow)
	out, err = runKind(t, WifiThroughput(f), params)
	if err != nil || out.Pass || !strings.Contains(out.Reason, "throughput below minimum") {
		t.Fatalf("slow case: %+v %v", out, err)
	}
	f.tp, f.tpErr = wifi.ThroughputResult{Interface: "wlan0"}, errors.New(`wlan0 did not associate with "LINE-TEST"`)
	out, err = runKind(t, WifiThroughput(f), params)
	if err != nil || out.Pass || !strings.Contains(out.Reason, "did not associate") {
		t.Fatalf("association case: %+v %v", out, err)
	}
}

func TestBluetoothScanOutcomes(t *testing.T) {
	ctrl := bluetooth.Info{Address: net.HardwareAddr{0, 0xaa, 1, 0, 0, 1}}
	found := &bluetooth.Device{Address: net.HardwareAddr{0xc0, 0xff, 0xee, 0, 0, 1}, AddressType: bluetooth.AddrLEPublic, RSSI: -47, Name: "beacon"}
	tests := []struct {
		name   string
		res    bluetooth.Result
		err    error
		pass   bool
		reason string
	}{
		{"pass", bluetooth.Result{Info: ctrl, Found: found}, nil, true, `C0:FF:EE:00:00:01 "beacon" (LE public) at -47 dBm on hci0`},
		{"missing", bluetooth.Result{Info: ctrl}, fmt.Errorf("%w: C0:FF:EE:00:00:01 not found", bluetooth.ErrNotFound), false, "peer not found"},
		{"no controller", bluetooth.Result{}, bluetooth.ErrNoController, false, "no Bluetooth controller"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRadios{bt: tt.res, btErr: tt.err}
			out, err := runKind(t, BluetoothScan(f), &BluetoothScanParams{Address: "c0:ff:ee:00:00:01", Discovery: "le", MinRSSI: -70})
			if err != nil {
				t.Fatal(err)
			}
			if out.Pass != tt.pass || !strings.Contains(out.Reason, tt.reason) {
				t.Errorf("outcome %+v", out)
			}
			if f.gotBT.Kind != bluetooth.LE || f.gotBT.MinRSSI == nil || *f.gotBT.MinRSSI != -70 || f.gotBT.Address.String() != "c0:ff:ee:00:00:01" {
				t.Errorf("request %+v", f.gotBT)
			}
		})
	}
}

func TestDefaultRegistryHasRadioKinds(t *testing.T) {
	r := Default()
	for _, n := range []string{"wifi.scan", "wifi.throughput", "bluetooth.scan"} {
		if _, ok := r.Lookup(n); !ok {
			t.Errorf("%s not registered", n)
		}
	}
}
