//go:build e2e

package scenarios

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/testbed/atmodem"
	"github.com/u-root/u-root/pkg/cpio"
)

// TestScenarioHostapd runs scenarios/gm-box-qemu.yaml with the agent as on a device, its
// wifi.scan and wifi.throughput steps against hostapd instead of the Go AP (hostapd also
// serves a WPA2-PSK BSS on the same radio, as line APs often do).
func TestScenarioHostapd(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/hostapd"); err != nil {
		t.Skipf("no hostapd on this host (apt-get install hostapd): %v", err)
	}
	initrd := withHostPrograms(t, testInitrd(t, map[string]string{"gm-box-qemu.yaml": readScenario(t, "gm-box-qemu.yaml")}), "/usr/sbin/hostapd")
	spec := `wifi-ap --ssid LINE-TEST --hostapd /usr/sbin/hostapd --wpa2-ssid LINE-WPA2; bt-peer --address C0:FF:EE:00:00:01 --name line-beacon --rssi -47`
	d := device{
		Initrd:  initrd,
		Append:  `rdinit=/bin/flashline-testbed flashline.testbed="` + spec + `" uroot.uinitargs="scenario run --force /scenarios/gm-box-qemu.yaml"`,
		Modem:   atmodem.EC25(),
		PressOn: regexp.MustCompile(regexp.QuoteMeta(">>> " + powerPrompt)),
		Timeout: 10 * time.Minute,
	}
	vm := boot(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), d.Timeout)
	defer cancel()
	_, err := vm.Expect(ctx, summaryRe, d.Timeout)
	lines := vm.Lines()
	var shown []string
	for _, l := range lines {
		l = strings.TrimRight(ansi.ReplaceAllString(l, ""), "\r")
		if strings.Contains(l, " PASS ") || strings.Contains(l, " FAIL ") || strings.Contains(l, "REASON") || strings.Contains(l, "measured:") ||
			strings.Contains(l, "wifi-ap:") || strings.Contains(l, "AP-STA-CONNECTED") || strings.Contains(l, "AP-ENABLED") {
			shown = append(shown, l)
		}
	}
	t.Logf("console (filtered, %s):\n%s", vm.Elapsed().Round(time.Second), strings.Join(shown, "\n"))
	if err != nil {
		t.Fatalf("no scenario verdict: %v", err)
	}
	res, ok := summary(lines)
	if !ok || res.Status != "pass" {
		t.Errorf("result %+v, want pass", res)
	}
	out := strings.Join(lines, "\n")
	if !strings.Contains(out, "wifi-ap: hostapd serves") || !strings.Contains(out, "AP-STA-CONNECTED") {
		t.Error("the station did not associate with hostapd (no hostapd line or AP-STA-CONNECTED on the console)")
	}
}

// withHostPrograms appends the host programs and their libraries to an initrd (a second
// cpio member, as the kernel unpacks concatenated archives).
func withHostPrograms(t *testing.T, initrd string, progs ...string) string {
	t.Helper()
	base, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	var recs []cpio.Record
	seen := map[string]bool{}
	add := func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, cpio.StaticFile(strings.TrimPrefix(p, "/"), string(b), 0o755))
	}
	for _, p := range progs {
		add(p)
		for _, l := range lddLibs(t, p) {
			add(l)
		}
	}
	var buf bytes.Buffer
	buf.Write(base)
	zw := gzip.NewWriter(&buf)
	w := cpio.Newc.Writer(zw)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "initrd-hostapd.gz")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
