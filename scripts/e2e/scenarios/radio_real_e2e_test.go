//go:build e2e

package scenarios

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/testbed/qemu"
)

// Host programs the real-peer test runs in the guest (Debian's hostapd, bluez-test-tools'
// btvirt and bluez's btmgmt).
var realPeerPrograms = []string{"/usr/sbin/hostapd", "/usr/bin/btvirt", "/usr/bin/btmgmt"}

// TestRadioRealPeers runs the Wi-Fi and Bluetooth probes against real implementations
// instead of this project's emulators: hostapd on mac80211_hwsim serving an open and a
// WPA2-PSK network, and BlueZ's btvirt controller emulator with btmgmt making its second
// controller a discoverable, advertising peer.
func TestRadioRealPeers(t *testing.T) {
	for _, p := range realPeerPrograms {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (apt-get install hostapd bluez bluez-test-tools): %v", p, err)
		}
	}
	dir := t.TempDir()
	goBuild(t, "./scripts/e2e/scenarios/radioinit", filepath.Join(dir, "init"))
	goBuild(t, "./cmds/flashline-testbed", filepath.Join(dir, "flashline-testbed"))
	files := map[string]string{
		"init":                  filepath.Join(dir, "init"),
		"bin/flashline-testbed": filepath.Join(dir, "flashline-testbed"),
	}
	for _, p := range realPeerPrograms {
		files[strings.TrimPrefix(p, "/")] = p
		for _, lib := range lddLibs(t, p) {
			files[strings.TrimPrefix(lib, "/")] = lib
		}
	}
	img := filepath.Join(dir, "initrd.gz")
	initramfs(t, img, files, moduleClosure(t, "mac80211_hwsim", "hci_vhci", "cmac", "ccm", "ctr", "algif_hash", "algif_skcipher", "ecb"))
	spec := `wifi-ap --ssid LINE-TEST --hostapd /usr/sbin/hostapd --wpa2-ssid LINE-WPA2 --psk line-test-psk; bt-bluez --name bluez-peer`
	vm := qemu.StartT(t, qemu.Options{
		Mode: qemu.Direct, Initrd: img, NoNIC: true, MemoryMiB: 512,
		Append:  `panic=-1 rdinit=/bin/flashline-testbed flashline.testbed="` + spec + `" radiotest.real=1`,
		Timeout: 8 * time.Minute,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	_, _ = vm.Expect(ctx, regexp.MustCompile(`RADIOTEST done`), 8*time.Minute)
	out := strings.Join(vm.Lines(), "\n")
	if p := os.Getenv("RADIOTEST_CONSOLE"); p != "" {
		_ = os.WriteFile(p, []byte(out), 0o644)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "RADIOTEST") || strings.Contains(l, "wifi-ap") || strings.Contains(l, "bt-bluez") || strings.Contains(l, "testbed init:") || strings.Contains(l, "hostapd") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	t.Logf("console:\n%s", strings.Join(lines, "\n"))
	if !strings.Contains(out, "RADIOTEST done") {
		t.Fatalf("guest did not finish; full console:\n%s", out)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "RADIOTEST ") && strings.Contains(l, " FAIL") {
			t.Errorf("%s", l)
		}
	}
	for _, c := range []string{"hostapd.wifi.scan-open", "hostapd.wifi.scan-wpa2", "hostapd.wifi.scan-wrong-ssid", "hostapd.wifi.throughput", "hostapd.wifi.throughput-wpa2-refused",
		"bluez.peer", "bluez.bluetooth.scan-bredr", "bluez.bluetooth.scan-le", "bluez.bluetooth.scan-le-no-rssi", "bluez.bluetooth.scan-missing"} {
		if !strings.Contains(out, "RADIOTEST "+c+" PASS") {
			t.Errorf("case %s did not pass", c)
		}
	}
	// btvirt's LE advertisement carries the name btmgmt set (its BR/EDR inquiry result has
	// none: names come from a remote name request, which needs bluetoothd's CONFIRM_NAME).
	if !regexp.MustCompile(`RADIOTEST bluez.bluetooth.scan-le PASS .*name="bluez-peer"`).MatchString(out) {
		t.Error("the BlueZ peer's name was not read from its advertisement")
	}
}

// lddLibs lists the shared libraries (and loader) ldd resolves for a host program.
func lddLibs(t *testing.T, prog string) []string {
	t.Helper()
	out, err := exec.Command("ldd", prog).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", prog, err)
	}
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs
}
