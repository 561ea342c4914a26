//go:build e2e

package scenarios

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/testbed/qemu"
)

// TestRadioProbes boots a minimal initramfs whose /init (radioinit) starts
// the Wi-Fi AP and Bluetooth peer emulators and runs the probes against them.
func TestRadioProbes(t *testing.T) {
	t.Run("spawned", func(t *testing.T) { radioProbes(t, "") })
	// The way scenario tests start the emulators: the testbed as rdinit.
	t.Run("rdinit", func(t *testing.T) {
		radioProbes(t, `rdinit=/bin/flashline-testbed flashline.testbed="wifi-ap --ssid LINE-TEST; bt-peer --address C0:FF:EE:00:00:01 --name line-beacon --rssi -47"`)
	})
}

// TestRadioMedium runs the probes with the AP's medium relay setting the
// signal to -75 dBm instead of hwsim's fixed value.
func TestRadioMedium(t *testing.T) {
	out := radioProbes(t, `rdinit=/bin/flashline-testbed flashline.testbed="wifi-ap --ssid LINE-TEST --signal -75; bt-peer --address C0:FF:EE:00:00:01 --name line-beacon --rssi -47" radiotest.signal=-75`)
	if !strings.Contains(out, "RADIOTEST wifi.scan-too-weak PASS") || !strings.Contains(out, "signal=-75dBm") {
		t.Error("the medium's -75 dBm was not measured, or a -70 dBm minimum did not fail")
	}
}

func radioProbes(t *testing.T, appendLine string) string {
	dir := t.TempDir()
	goBuild(t, "./scripts/e2e/scenarios/radioinit", filepath.Join(dir, "init"))
	goBuild(t, "./cmds/flashline-testbed", filepath.Join(dir, "flashline-testbed"))
	img := filepath.Join(dir, "initrd.gz")
	initramfs(t, img, map[string]string{
		"init":                  filepath.Join(dir, "init"),
		"bin/flashline-testbed": filepath.Join(dir, "flashline-testbed"),
	}, moduleClosure(t, "mac80211_hwsim", "hci_vhci", "cmac"))
	vm := qemu.StartT(t, qemu.Options{
		Mode: qemu.Direct, Initrd: img, NoNIC: true, MemoryMiB: 512,
		Append:  "panic=-1 " + appendLine + " " + os.Getenv("RADIOTEST_APPEND"),
		Timeout: 6 * time.Minute,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	_, _ = vm.Expect(ctx, regexp.MustCompile(`RADIOTEST done`), 6*time.Minute)
	out := strings.Join(vm.Lines(), "\n")
	if p := os.Getenv("RADIOTEST_CONSOLE"); p != "" {
		_ = os.WriteFile(p, []byte(out), 0o644)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "RADIOTEST") || strings.Contains(l, "wifi-ap:") || strings.Contains(l, "bt-peer:") || strings.Contains(l, "testbed init:") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	t.Logf("console:\n%s", strings.Join(lines, "\n"))
	if !strings.Contains(out, "RADIOTEST done") {
		t.Fatalf("guest did not finish; full console:\n%s", out)
		return out
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "RADIOTEST ") && strings.Contains(l, " FAIL") {
			t.Errorf("%s", l)
		}
	}
	for _, c := range []string{"wifi.scan", "wifi.scan-wrong-ssid", "bluetooth.scan-bredr", "bluetooth.scan-le", "bluetooth.scan-both", "bluetooth.scan-missing", "wifi.throughput", "wifi.throughput-wrong-ssid"} {
		if !strings.Contains(out, "RADIOTEST "+c+" PASS") {
			t.Errorf("case %s did not pass", c)
		}
	}
	return out
}
