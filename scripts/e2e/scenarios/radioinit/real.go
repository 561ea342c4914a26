package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/probe/bluetooth"
	"github.com/flashline/flashline/agent/probe/rfkill"
	"github.com/flashline/flashline/agent/probe/wifi"
)

// realPeers runs the probes against the real peers: hostapd serving LINE-TEST (open) and
// LINE-WPA2 (WPA2-PSK) on one hwsim radio, and a BlueZ btvirt controller named bluez-peer
// whose address flashline-testbed bt-bluez wrote down.
func realPeers(ctx context.Context) {
	minSignal := -70
	wifiCase(ctx, "hostapd.wifi.scan-open", wifi.ScanRequest{SSID: "LINE-TEST", MinSignalDBm: &minSignal, InterfaceWait: 20 * time.Second}, 30*time.Second, true)
	wifiCase(ctx, "hostapd.wifi.scan-wpa2", wifi.ScanRequest{SSID: "LINE-WPA2", MinSignalDBm: &minSignal, InterfaceWait: 5 * time.Second}, 30*time.Second, true)
	wifiCase(ctx, "hostapd.wifi.scan-wrong-ssid", wifi.ScanRequest{SSID: "NO-SUCH-AP", InterfaceWait: 5 * time.Second}, 8*time.Second, false)
	throughputCase(ctx, "hostapd.wifi.throughput", "LINE-TEST", 0.5, true)
	// The probe's kernel connect is open-system only: a WPA2 network must not "pass".
	throughputCase(ctx, "hostapd.wifi.throughput-wpa2-refused", "LINE-WPA2", 0.5, false)

	if err := rfkill.Unblock("", rfkill.Bluetooth); err != nil {
		fmt.Printf("RADIOTEST rfkill FAIL %v\n", err)
	}
	var peer net.HardwareAddr
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b, err := os.ReadFile("/run/flashline-testbed/bluez-peer")
		if err == nil {
			if peer, err = net.ParseMAC(strings.TrimSpace(string(b))); err == nil {
				break
			}
		}
	}
	if peer == nil {
		fmt.Println("RADIOTEST bluez.peer FAIL no address from bt-bluez")
		return
	}
	fmt.Printf("RADIOTEST bluez.peer PASS address=%s\n", peer)
	btCase(ctx, "bluez.bluetooth.scan-bredr", bluetooth.Request{Address: peer, Kind: bluetooth.BREDR, ControllerWait: 20 * time.Second}, 30*time.Second, true)
	btCase(ctx, "bluez.bluetooth.scan-le", bluetooth.Request{Address: peer, Kind: bluetooth.LE}, 30*time.Second, true)
	// btvirt reports LE advertisements with RSSI 127 ("not available"): a minimum must
	// fail rather than pass on it.
	minRSSI := -90
	btCase(ctx, "bluez.bluetooth.scan-le-no-rssi", bluetooth.Request{Address: peer, Kind: bluetooth.LE, MinRSSI: &minRSSI}, 10*time.Second, false)
	missing, _ := net.ParseMAC("C0:FF:EE:00:00:99")
	btCase(ctx, "bluez.bluetooth.scan-missing", bluetooth.Request{Address: missing, Kind: bluetooth.Both}, 8*time.Second, false)
}
