//go:build e2e

package scenarios

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/testbed/atmodem"
	"github.com/u-root/u-root/pkg/cpio"
)

const (
	testbedSpec = `wifi-ap --ssid LINE-TEST; bt-peer --address C0:FF:EE:00:00:01 --name line-beacon --rssi -47`
	powerPrompt = "Press POWER"
)

var (
	baseOnce   sync.Once
	baseInitrd string
	baseErr    error
)

// testInitrd returns the agent's initrd with the testbed ($FLASHLINE_TEST_INITRD,
// else out/initrd-testbed.gz from `make testbed-initrd`, else built here the
// same way), with the scenario
// files appended as a second cpio archive (the kernel unpacks both).
func testInitrd(t *testing.T, scenarios map[string]string) string {
	t.Helper()
	baseOnce.Do(func() {
		if p := os.Getenv("FLASHLINE_TEST_INITRD"); p != "" {
			baseInitrd = p
			return
		}
		// make testbed-initrd's output, when present.
		if p := filepath.Join(repoRoot(t), "out", "initrd-testbed.gz"); fileExists(p) {
			baseInitrd = p
			return
		}
		dir, err := os.MkdirTemp("", "flashline-e2e-initrd")
		if err != nil {
			baseErr = err
			return
		}
		baseInitrd = filepath.Join(dir, "initrd.gz")
		cmd := exec.Command("go", "run", "./initramfs/mkinitrd", "-modules-dir", modulesDir(t),
			"-extra", "./cmds/flashline-testbed", "-add-modules", "ftdi_sio", "-o", baseInitrd)
		cmd.Dir = repoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			baseErr = err
			t.Logf("mkinitrd:\n%s", out)
		}
	})
	if baseErr != nil {
		t.Fatalf("build test initrd: %v", baseErr)
	}
	base, err := os.ReadFile(baseInitrd)
	if err != nil {
		t.Fatal(err)
	}
	recs := []cpio.Record{cpio.Directory("scenarios", 0o755)}
	for name, body := range scenarios {
		recs = append(recs, cpio.StaticFile("scenarios/"+name, body, 0o644))
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
	p := filepath.Join(t.TempDir(), "initrd.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readScenario(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "scenarios", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// variant derives a failing scenario from an example by replacing text.
func variant(t *testing.T, src string, pairs ...string) string {
	t.Helper()
	out := src
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(out, pairs[i]) {
			t.Fatalf("example scenario no longer contains %q", pairs[i])
		}
		out = strings.ReplaceAll(out, pairs[i], pairs[i+1])
	}
	return out
}

type scenarioCase struct {
	name     string
	file     string // under /scenarios in the guest
	body     string
	modem    func() atmodem.Config
	press    bool
	status   string
	failStep string
	reason   string // substring of the failure reason
}

// TestScenarioExamples boots the agent's initrd with emulated hardware and
// runs scenarios/gm-box-qemu.yaml for real, then failing variants that must
// fail at the right step for the right reason.
func TestScenarioExamples(t *testing.T) {
	qemuScenario := readScenario(t, "gm-box-qemu.yaml")
	cases := []scenarioCase{
		{name: "pass", file: "gm-box-qemu.yaml", body: qemuScenario, modem: atmodem.EC25, press: true, status: "pass"},
		{name: "wrong-ssid", file: "wrong-ssid.yaml", body: variant(t, qemuScenario, "ssid: LINE-TEST", "ssid: NOT-THE-LINE-AP"),
			modem: atmodem.EC25, press: true, status: "fail", failStep: "Wi-Fi sees the line AP", reason: `"NOT-THE-LINE-AP" not heard`},
		{name: "missing-bt", file: "missing-bt.yaml", body: variant(t, qemuScenario, `beacon: "C0:FF:EE:00:00:01"`, `beacon: "C0:FF:EE:00:00:99"`),
			modem: atmodem.EC25, press: true, status: "fail", failStep: "Bluetooth finds the control beacon", reason: "C0:FF:EE:00:00:99 not found"},
		{name: "no-sim", file: "gm-box-qemu.yaml", body: qemuScenario,
			modem: func() atmodem.Config { c := atmodem.EC25(); c.SIMPresent = false; return c }, press: true,
			status: "fail", failStep: "LTE modem, SIM and network", reason: "no SIM"},
		{name: "no-key-press", file: "gm-box-qemu.yaml", body: qemuScenario, modem: atmodem.EC25, press: false,
			status: "fail", failStep: "Power button", reason: "KEY_POWER not pressed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runScenarioCase(t, tc) })
	}
}

func runScenarioCase(t *testing.T, tc scenarioCase) {
	initrd := testInitrd(t, map[string]string{tc.file: tc.body})
	d := device{
		Initrd: initrd,
		Append: `rdinit=/bin/flashline-testbed flashline.testbed="` + testbedSpec + `" ` +
			`uroot.uinitargs="scenario run --force /scenarios/` + tc.file + `"`,
		Modem:   tc.modem(),
		Timeout: 10 * time.Minute,
	}
	if tc.press {
		d.PressOn = regexp.MustCompile(regexp.QuoteMeta(">>> " + powerPrompt))
	}
	vm := boot(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), d.Timeout)
	defer cancel()
	_, err := vm.Expect(ctx, summaryRe, d.Timeout)
	lines := vm.Lines()
	var shown []string
	for _, l := range lines {
		l = strings.TrimRight(ansi.ReplaceAllString(l, ""), "\r")
		if strings.Contains(l, " PASS ") || strings.Contains(l, " FAIL ") || strings.Contains(l, "RETRY") || strings.Contains(l, "ERROR") ||
			strings.Contains(l, "FAILED STEP") || strings.Contains(l, "REASON") || strings.Contains(l, "measured:") ||
			strings.Contains(l, "testbed") || strings.Contains(l, "wifi-ap:") || strings.Contains(l, "bt-peer:") {
			shown = append(shown, l)
		}
	}
	t.Logf("console (filtered, %s):\n%s", vm.Elapsed().Round(time.Second), strings.Join(shown, "\n"))
	if err != nil {
		t.Fatalf("no scenario verdict on the console: %v", err)
	}
	res, ok := summary(lines)
	if !ok {
		t.Fatal("verdict line seen but not parsed")
	}
	if res.Status != tc.status {
		t.Errorf("status %s, want %s (failed step %q: %s)", res.Status, tc.status, res.FailedStep, res.Reason)
	}
	if tc.status == "fail" {
		if res.FailedStep != tc.failStep {
			t.Errorf("failed step %q, want %q", res.FailedStep, tc.failStep)
		}
		if !strings.Contains(res.Reason, tc.reason) {
			t.Errorf("reason %q, want it to contain %q", res.Reason, tc.reason)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
