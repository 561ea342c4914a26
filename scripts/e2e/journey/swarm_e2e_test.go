//go:build e2e

package journey_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/scripts/line"
	"github.com/flashline/flashline/testbed/qemu"
)

// TestJourneySwarmTwoDevices: two QEMU GM-Boxes on one line flash the same image through the
// server's BitTorrent swarm, both under one hold of the QEMU lock. Both netboot and reach the
// operator's POWER prompt; then the server's uplink is shaped (8 Mbit/s, as a line server's
// uplink is the scarce link) and device A is released, device B once A is a third into its
// flash. B must finish with PASS having taken well under one image from the server (counted
// on B's tap from the server's address, HTTP and seed alike): the rest came from A.
func TestJourneySwarmTwoDevices(t *testing.T) {
	if os.Getenv(line.NSEnv) == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root for a network namespace and tap devices")
		}
		args := []string{os.Args[0], "-test.run", "^" + t.Name() + "$", "-test.v", "-test.timeout", "40m"}
		if _, err := line.EnterN(context.Background(), false, 2, args, nil); err != nil {
			t.Fatalf("%s inside its namespace: %v", t.Name(), err)
		}
		return
	}
	repo, err := qemu.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := qemu.DefaultKernel()
	if err != nil {
		t.Fatal(err)
	}
	const image = "firmware.img.zst"
	initrd := filepath.Join(repo, "out", "initrd-testbed.gz")
	firmware := filepath.Join(repo, "out", "firmware")
	st, err := os.Stat(filepath.Join(firmware, image))
	if err != nil {
		t.Fatalf("%v: run `make testbed-initrd firmware` first", err)
	}
	if _, err := os.Stat(initrd); err != nil {
		t.Fatalf("%v: run `make testbed-initrd firmware` first", err)
	}
	imageSize := st.Size()
	work := t.TempDir()
	logf := func(format string, args ...any) { t.Logf(strings.TrimRight(format, "\n"), args...) }
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	l, err := line.Start(ctx, line.Config{Repo: repo, Work: work, Kernel: kernel, Initrd: initrd,
		Firmware: firmware, Image: image, Scenario: filepath.Join(repo, "scripts", "e2e", "journey", "testdata", "gm-box-qemu-swarm.yaml"),
		Printf: logf, Swarm: true, SwarmLinger: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taps := l.Taps()
	if len(taps) != 2 {
		t.Fatalf("line has taps %q, want 2", taps)
	}
	for _, tap := range taps {
		if err := l.CountFromServer(ctx, tap); err != nil {
			t.Fatal(err)
		}
	}

	hold, err := qemu.HoldLock(ctx, "", fmt.Sprintf("swarm journey (two guests) pid %d", os.Getpid()), func(h string) {
		t.Logf("waiting for the QEMU lock: %s", h)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Release()
	type dev struct {
		*line.Device
		gate chan struct{}
		vm   *qemu.VM
	}
	var devs []*dev
	for i, serial := range []string{"E2E-SWARM-A", "E2E-SWARM-B"} {
		d, err := line.NewDevice(work, serial, 256<<20)
		if err != nil {
			t.Fatal(err)
		}
		d.MAC = []string{"52:54:00:12:34:56", "52:54:00:12:34:57"}[i]
		d.Tap, d.Hold = taps[i], hold
		g := make(chan struct{})
		d.Button = g
		devs = append(devs, &dev{Device: d, gate: g})
	}
	var consoles []string
	defer func() {
		if t.Failed() {
			keepLogs(t, &line.Outcome{Consoles: consoles}, l)
		}
	}()
	for _, d := range devs {
		vm, err := d.PowerOn(ctx, l, "swarm-"+d.Serial, 25*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Kill()
		d.vm = vm
		consoles = append(consoles, vm.LogPath())
	}
	prompt := regexp.MustCompile(`>>> Press POWER`)
	for _, d := range devs {
		if _, err := d.vm.Expect(ctx, prompt, 15*time.Minute); err != nil {
			t.Fatalf("%s never prompted for POWER: %v (console %s)", d.Serial, err, d.vm.LogPath())
		}
		logf("%s at the POWER prompt after %.0fs", d.Serial, d.vm.Elapsed().Seconds())
	}
	if err := l.ShapeUplink(ctx, 8_000_000); err != nil {
		t.Fatal(err)
	}
	before := make([]int64, len(devs))
	for i, tap := range taps {
		if before[i], err = l.BytesFromServer(ctx, tap); err != nil {
			t.Fatal(err)
		}
	}
	a, b := devs[0], devs[1]
	close(a.gate)
	if _, err := a.vm.Expect(ctx, regexp.MustCompile(`flash: +([3-9]0|100)% |written and verified`), 10*time.Minute); err != nil {
		t.Fatalf("%s did not get a third into its flash: %v (console %s)", a.Serial, err, a.vm.LogPath())
	}
	logf("%s a third into its flash: releasing %s", a.Serial, b.Serial)
	close(b.gate)
	flashed := regexp.MustCompile(`flash: .* written and verified`)
	took := make([]int64, len(devs))
	for i, d := range devs {
		if _, err := d.vm.Expect(ctx, flashed, 10*time.Minute); err != nil {
			t.Fatalf("%s did not flash: %v (console %s)", d.Serial, err, d.vm.LogPath())
		}
		n, err := l.BytesFromServer(ctx, taps[i])
		if err != nil {
			t.Fatal(err)
		}
		took[i] = n - before[i]
		logf("%s flashed; took %.2f MiB from the server (image %.2f MiB, %.2f x)", d.Serial, mib(took[i]), mib(imageSize), float64(took[i])/float64(imageSize))
	}
	pass := regexp.MustCompile(`flashline: OK +PASS$|flashline: FAIL +FAIL$`)
	for _, d := range devs {
		line, err := d.vm.Expect(ctx, pass, 10*time.Minute)
		if err != nil {
			t.Fatalf("%s: no verdict: %v (console %s)", d.Serial, err, d.vm.LogPath())
		}
		if !strings.Contains(line, "PASS") {
			t.Fatalf("%s: %s (console %s)", d.Serial, line, d.vm.LogPath())
		}
	}
	for _, d := range devs {
		b, err := l.Export(ctx, d.Serial)
		if err != nil {
			t.Fatal(err)
		}
		var e line.Export
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		passed := 0
		for _, r := range e.Runs {
			if r.HasResult && r.Status == "pass" {
				passed++
			}
		}
		if passed != 1 {
			t.Errorf("%s: the server stored %d passed results, want 1: %+v", d.Serial, passed, e.Runs)
		}
	}
	// Well under one image: at most half of it from the server, the rest from device A.
	if took[1] > imageSize/2 {
		t.Errorf("%s took %.2f MiB from the server, want well under the image's %.2f MiB (at most half)", b.Serial, mib(took[1]), mib(imageSize))
	}
	logf("swarm journey: %s took %.2f MiB from the server (%.2f x image), %s %.2f MiB (%.2f x)", a.Serial, mib(took[0]), float64(took[0])/float64(imageSize),
		b.Serial, mib(took[1]), float64(took[1])/float64(imageSize))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
