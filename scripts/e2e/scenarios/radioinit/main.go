// Command radioinit is the /init of a minimal test initramfs that proves the
// radio emulators and probes against a real kernel (QEMU): it starts
// flashline-testbed's Wi-Fi AP and Bluetooth peer, then runs the wifi and
// bluetooth probes, passing and failing cases, and prints one
// "RADIOTEST <case> PASS|FAIL <detail>" line per case for the test to check.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/probe/bluetooth"
	"github.com/flashline/flashline/agent/probe/rfkill"
	"github.com/flashline/flashline/agent/probe/wifi"
	mwifi "github.com/mdlayher/wifi"
	"golang.org/x/sys/unix"
)

func main() {
	mounts()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmdline, _ := os.ReadFile("/proc/cmdline")
	fmt.Printf("RADIOTEST start %s", cmdline)

	// Booted with rdinit=/bin/flashline-testbed the emulators run already.
	spawn := [][]string{
		{"wifi-ap", "--ssid", "LINE-TEST"},
		{"bt-peer", "--address", "C0:FF:EE:00:00:01", "--name", "line-beacon", "--rssi", "-47"},
	}
	if strings.Contains(string(cmdline), "flashline.testbed=") {
		spawn = nil
	}
	for _, args := range spawn {
		c := exec.CommandContext(ctx, "/bin/flashline-testbed", args...)
		c.Stdout, c.Stderr = os.Stdout, os.Stdout
		if err := c.Start(); err != nil {
			fmt.Printf("RADIOTEST testbed FAIL %v\n", err)
		}
	}
	time.Sleep(3 * time.Second)

	// With radiotest.real the testbed runs hostapd and BlueZ's btvirt instead of the Go
	// emulators (TestRadioRealPeers).
	if _, ok := param(string(cmdline), "radiotest.real"); ok {
		realPeers(ctx)
		fmt.Println("RADIOTEST done")
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		return
	}
	minSignal := -70
	// With radiotest.signal=N the AP's medium relay sets the signal: check
	// that the scan measures it, and that a stricter minimum fails.
	if v, ok := param(string(cmdline), "radiotest.signal"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Printf("RADIOTEST radiotest.signal FAIL %v\n", err)
		}
		minSignal = n - 5
		tooStrict := n + 5
		wifiCase(ctx, "wifi.scan-too-weak", wifi.ScanRequest{SSID: "LINE-TEST", MinSignalDBm: &tooStrict, InterfaceWait: 20 * time.Second}, 30*time.Second, false)
	}
	wifiCase(ctx, "wifi.scan", wifi.ScanRequest{SSID: "LINE-TEST", MinSignalDBm: &minSignal, InterfaceWait: 20 * time.Second}, 30*time.Second, true)
	wifiCase(ctx, "wifi.scan-wrong-ssid", wifi.ScanRequest{SSID: "NO-SUCH-AP", InterfaceWait: 5 * time.Second}, 8*time.Second, false)
	throughputCase(ctx, "wifi.throughput", "LINE-TEST", 0.5, true)
	throughputCase(ctx, "wifi.throughput-wrong-ssid", "NO-SUCH-AP", 0.5, false)

	peer, _ := net.ParseMAC("C0:FF:EE:00:00:01")
	missing, _ := net.ParseMAC("C0:FF:EE:00:00:99")
	if err := rfkill.Unblock("", rfkill.Bluetooth); err != nil {
		fmt.Printf("RADIOTEST rfkill FAIL %v\n", err)
	}
	minRSSI := -60
	btCase(ctx, "bluetooth.scan-bredr", bluetooth.Request{Address: peer, Kind: bluetooth.BREDR, MinRSSI: &minRSSI, ControllerWait: 20 * time.Second}, 20*time.Second, true)
	btCase(ctx, "bluetooth.scan-le", bluetooth.Request{Address: peer, Kind: bluetooth.LE, MinRSSI: &minRSSI}, 20*time.Second, true)
	btCase(ctx, "bluetooth.scan-both", bluetooth.Request{Address: peer, Kind: bluetooth.Both}, 20*time.Second, true)
	btCase(ctx, "bluetooth.scan-missing", bluetooth.Request{Address: missing, Kind: bluetooth.BREDR}, 6*time.Second, false)
	fmt.Println("RADIOTEST done")
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// param returns the value of a name=value kernel parameter.
func param(cmdline, name string) (string, bool) {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func mounts() {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/tmp", "tmpfs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && err != unix.EBUSY {
			fmt.Printf("mount %s: %v\n", m.dst, err)
		}
	}
}

func report(name string, wantPass bool, err error, detail string) {
	ok := (err == nil) == wantPass
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	if err != nil {
		detail = strings.TrimSpace(detail + " error: " + err.Error())
	}
	fmt.Printf("RADIOTEST %s %s %s\n", name, verdict, detail)
}

func wifiCase(ctx context.Context, name string, req wifi.ScanRequest, d time.Duration, wantPass bool) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	c, err := mwifi.New()
	if err != nil {
		report(name, wantPass, err, "")
		return
	}
	defer c.Close()
	start := time.Now()
	res, err := wifi.Scan(ctx, c, wifi.KernelLinks{}, req)
	detail := fmt.Sprintf("iface=%s scans=%d took=%s", res.Interface, res.Scans, time.Since(start).Round(time.Millisecond))
	if res.Found != nil {
		detail += fmt.Sprintf(" ssid=%q bssid=%s freq=%d signal=%.0fdBm", res.Found.SSID, res.Found.BSSID, res.Found.FrequencyMHz, res.Found.SignalDBm)
	}
	report(name, wantPass, err, detail)
}

func btCase(ctx context.Context, name string, req bluetooth.Request, d time.Duration, wantPass bool) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	s, err := bluetooth.Dial()
	if err != nil {
		report(name, wantPass, err, "")
		return
	}
	defer s.Close()
	start := time.Now()
	res, err := bluetooth.Scan(ctx, s, req)
	detail := fmt.Sprintf("hci%d ctrl=%s rounds=%d took=%s", res.Controller, res.Info.Address, res.Rounds, time.Since(start).Round(time.Millisecond))
	if res.Found != nil {
		detail += fmt.Sprintf(" found=%s type=%q rssi=%d name=%q", res.Found.Address, res.Found.AddressType, res.Found.RSSI, res.Found.Name)
	}
	report(name, wantPass, err, detail)
}

func throughputCase(ctx context.Context, name, ssid string, minMbps float64, wantPass bool) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := mwifi.New()
	if err != nil {
		report(name, wantPass, err, "")
		return
	}
	defer c.Close()
	start := time.Now()
	res, err := wifi.Throughput(ctx, c, wifi.KernelLinks{}, wifi.KernelNetwork{}, wifi.ThroughputRequest{
		SSID: ssid, Sink: "192.168.77.1:5201", Duration: 5 * time.Second, MinMbps: minMbps,
		AssociateTimeout: 20 * time.Second, Logger: slog.Default(),
	})
	detail := fmt.Sprintf("iface=%s bssid=%s freq=%d signal=%.0fdBm addr=%s bytes=%d elapsed=%s mbps=%.2f took=%s",
		res.Interface, res.BSSID, res.FrequencyMHz, res.SignalDBm, res.Address, res.Bytes, res.Elapsed.Round(time.Millisecond), res.Mbps, time.Since(start).Round(time.Millisecond))
	report(name, wantPass, err, detail)
}
