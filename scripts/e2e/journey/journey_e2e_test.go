//go:build e2e

// Package journey_test is the acceptance test of the whole project: a QEMU GM-Box netboots
// from the reference server, is tested, flashed, power-cycled and boots its new firmware, and
// the failure paths end as they must (a failing step or a corrupted image: FAIL stored with
// the reason, nothing bootable on the disk, the device netboots again; a network drop or a
// server restart: PASS, stored once).
//
// Each test runs inside its own network namespace: the test binary re-executes itself there.
// It needs root, QEMU, the kernel from scripts/setup, and `make testbed-initrd firmware`.
package journey_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/scripts/line"
	"github.com/flashline/flashline/testbed/netlab"
	"github.com/flashline/flashline/testbed/qemu"
)

type journeyCase struct {
	scenario string
	image    string
	fault    line.Fault
	memory   int
	cutAfter int64 // cut the first image download after this many bytes
	// whileTesting: the rule flashes while the scenario runs (flash.while_testing).
	whileTesting bool
	wantPass     bool
	// wantFailed is the failed step stored by the server; wantReason a part of its reason.
	wantFailed, wantReason string
	// place, when set, names the line and its stations, puts the device on a switch port
	// and says where the server must have placed the run.
	place *placement
}

// placement is a line with stations, the switch port the device's NIC is plugged into, and
// where the server must place the device.
type placement struct {
	line     string
	stations string // the server's stations: list (YAML)
	lldp     netlab.LLDPPort
	// wantStation, wantSource and wantPort are the run's station, station_source and
	// station_port as the server stores them.
	wantStation, wantSource, wantPort string
}

// inNamespace runs the calling test again inside a fresh line namespace and reports whether
// this process is the one inside.
func inNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv(line.NSEnv) != "" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and a tap device")
	}
	args := []string{os.Args[0], "-test.run", "^" + t.Name() + "$", "-test.v", "-test.timeout", "40m"}
	if _, err := line.Enter(context.Background(), false, args, nil); err != nil {
		t.Fatalf("%s inside its namespace: %v", t.Name(), err)
	}
	return false
}

func runCase(t *testing.T, tc journeyCase) {
	if !inNamespace(t) {
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
	initrd := filepath.Join(repo, "out", "initrd-testbed.gz")
	firmware := filepath.Join(repo, "out", "firmware")
	for _, p := range []string{initrd, filepath.Join(firmware, tc.image)} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: run `make testbed-initrd firmware` first", err)
		}
	}
	work := t.TempDir()
	logf := func(format string, args ...any) { t.Logf(strings.TrimRight(format, "\n"), args...) }
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	cfg := line.Config{Repo: repo, Work: work, Kernel: kernel, Initrd: initrd,
		Firmware: firmware, Image: tc.image, Scenario: filepath.Join(repo, "scenarios", tc.scenario), Printf: logf,
		CutImageAfter: tc.cutAfter, WhileTesting: tc.whileTesting}
	if p := tc.place; p != nil {
		cfg.LineName, cfg.Stations, cfg.LLDP = p.line, p.stations, &p.lldp
	}
	l, err := line.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serial := "E2E-" + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(t.Name(), "TestJourney"), "/", "-"))
	d, err := line.NewDevice(work, serial, 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	if tc.memory > 0 {
		d.Memory = tc.memory
	}
	out, err := line.RunJourney(ctx, l, d, tc.fault, logf)
	keepLogs(t, out, l)
	if err != nil {
		t.Fatal(err)
	}
	if out.Passed != tc.wantPass {
		t.Fatalf("passed = %v, want %v", out.Passed, tc.wantPass)
	}
	// The server stored exactly one result for the run, with what happened.
	var withResult int
	for _, r := range out.Export.Runs {
		if r.HasResult {
			withResult++
		}
	}
	if withResult != 1 {
		t.Fatalf("server stored %d results for %s, want exactly 1: %+v", withResult, serial, out.Export.Runs)
	}
	run := out.Export.Runs[len(out.Export.Runs)-1]
	for _, r := range out.Export.Runs {
		if r.HasResult {
			run = r
		}
	}
	phases := map[string]bool{}
	for _, p := range run.Timings {
		phases[p.Phase] = true
	}
	// The agent's own phases, and the netboot as the server saw it (DHCP and TFTP hooks).
	for _, p := range []string{"inventory", "hello", "scenario", "pxe_dhcp", "tftp", "tftp_kernel", "tftp_initrd", "netboot_to_hello"} {
		if !phases[p] {
			t.Errorf("timing %q not stored: %+v", p, run.Timings)
		}
	}
	t.Logf("stored timings: %+v", run.Timings)
	if p := tc.place; p != nil {
		// The agent heard its switch port on the boot NIC (the first boot's console) ...
		heard := fmt.Sprintf("lldp: switch %s port %s", p.lldp.SystemName, p.lldp.PortID)
		if b, err := os.ReadFile(out.Consoles[0]); err != nil || !strings.Contains(string(b), heard) {
			t.Errorf("the agent did not print %q on its console (%s, %v)", heard, out.Consoles[0], err)
		}
		// ... and the server placed the run by it.
		checkPlacement(ctx, t, l, *p, serial, run.RunID, run.Line, run.Station, run.StationSource, run.StationPort)
	}
	if tc.wantPass {
		if run.Status != "pass" || !out.Booted {
			t.Fatalf("stored %s (booted %v), want pass and the firmware booted", run.Status, out.Booted)
		}
		if !phases["flash"] {
			t.Errorf("flash timing not stored: %+v", run.Timings)
		}
		// The second boot fetched the device's pxelinux config (LOCALBOOT): the server timed
		// the reboot on the passed run.
		b, err := l.Export(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		var after line.Export
		if err := json.Unmarshal(b, &after); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range after.Runs {
			if r.RunID != run.RunID {
				continue
			}
			found = true
			var reboot bool
			for _, p := range r.Timings {
				reboot = reboot || p.Phase == "reboot"
			}
			if !reboot {
				t.Errorf("reboot timing not stored after the second boot: %+v", r.Timings)
			}
			t.Logf("timings after the second boot: %+v", r.Timings)
		}
		if !found {
			t.Errorf("run %s missing from the export after the second boot", run.RunID)
		}
		return
	}
	if run.Status != "fail" || run.FailedStep != tc.wantFailed || !strings.Contains(run.Reason, tc.wantReason) {
		t.Fatalf("stored %s failed_step=%q reason=%q; want fail, %q, reason containing %q", run.Status, run.FailedStep, run.Reason, tc.wantFailed, tc.wantReason)
	}
	zero, err := line.FirstMiBZero(d.Disk)
	if err != nil {
		t.Fatal(err)
	}
	if !zero {
		t.Fatalf("a failed device's disk has a non-zero first MiB: it could boot something")
	}
}

// checkPlacement checks the server's record of where the device was: the stored run (the
// export), and the line overview an operator's dashboard shows (/dashboard/api/line).
func checkPlacement(ctx context.Context, t *testing.T, l *line.Line, p placement, serial, runID, runLine, station, source, port string) {
	t.Helper()
	if runLine != p.line || station != p.wantStation || source != p.wantSource || port != p.wantPort {
		t.Errorf("stored run %s: line %q station %q (source %q, port %q); want line %q station %q (source %q, port %q)",
			runID, runLine, station, source, port, p.line, p.wantStation, p.wantSource, p.wantPort)
	}
	var ov struct {
		Line     string `json:"line"`
		Stations []struct {
			Name string `json:"name"`
			Run  *struct {
				RunID         string `json:"run_id"`
				Line          string `json:"line"`
				Serial        string `json:"serial"`
				Status        string `json:"status"`
				Station       string `json:"station"`
				StationSource string `json:"station_source"`
				StationPort   string `json:"station_port"`
			} `json:"run"`
		} `json:"stations"`
	}
	if err := l.Get(ctx, "/dashboard/api/line", &ov); err != nil {
		t.Fatalf("line overview: %v", err)
	}
	if ov.Line != p.line {
		t.Errorf("line overview of line %q, want %q", ov.Line, p.line)
	}
	found := false
	for _, st := range ov.Stations {
		if st.Run == nil || st.Run.Serial != serial {
			continue
		}
		found = true
		r := st.Run
		if st.Name != p.wantStation || r.RunID != runID || r.Line != p.line || r.Station != p.wantStation || r.StationSource != p.wantSource {
			t.Errorf("line overview shows %s at station %q: run %s line %q station %q source %q; want station %q, run %s, line %q, source %q",
				serial, st.Name, r.RunID, r.Line, r.Station, r.StationSource, p.wantStation, runID, p.line, p.wantSource)
		}
		t.Logf("line overview: station %q has %s (run %s, %s, placed by %s from %q)", st.Name, r.Serial, r.RunID, r.Status, r.StationSource, r.StationPort)
	}
	if !found {
		t.Errorf("line overview shows %s at no station: %+v", serial, ov.Stations)
	}
}

// keepLogs copies the consoles and the server log somewhere that survives the test when it
// fails (the temp dir does not).
func keepLogs(t *testing.T, out *line.Outcome, l *line.Line) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := filepath.Join(os.TempDir(), "flashline-journey-logs", t.Name())
		_ = os.MkdirAll(dir, 0o755)
		files := append([]string{l.ServerLog()}, out.Consoles...)
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				_ = os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
			}
		}
		fmt.Fprintf(os.Stderr, "journey logs kept in %s\n", dir)
	})
}

func TestJourneyPass(t *testing.T) {
	runCase(t, journeyCase{scenario: "gm-box-qemu.yaml", image: "firmware.img.zst", wantPass: true})
}

func TestJourneyFailingStep(t *testing.T) {
	runCase(t, journeyCase{scenario: "gm-box-qemu-fail.yaml", image: "firmware.img.zst", fault: line.FailingStep,
		wantFailed: "LTE signal strong enough", wantReason: "csq"})
}

// TestJourneyFailingStepWhileTesting: with flash.while_testing the image is being written when
// the LTE step fails; the download stops, the disk is left without a partition table, the
// stored result names the step and the device netboots the agent again.
func TestJourneyFailingStepWhileTesting(t *testing.T) {
	runCase(t, journeyCase{scenario: "gm-box-qemu-fail.yaml", image: "firmware.img.zst", fault: line.FailingStep, whileTesting: true,
		wantFailed: "LTE signal strong enough", wantReason: "csq"})
}

func TestJourneyNetworkDrop256MiB(t *testing.T) {
	// The xz image (9 MiB) is cut after 3 MiB: the agent resumes with Range and must still pass.
	runCase(t, journeyCase{scenario: "gm-box-qemu.yaml", image: "firmware.img.xz", fault: line.NetworkDrop, memory: 256,
		cutAfter: 3 << 20, wantPass: true})
}

func TestJourneyCorruptImage(t *testing.T) {
	// The raw image: a flipped byte then decodes fine and only the signed hash can catch it.
	runCase(t, journeyCase{scenario: "gm-box-qemu.yaml", image: "firmware.img", fault: line.CorruptImage,
		wantFailed: "flash", wantReason: "sha256"})
}

func TestJourneyServerRestart(t *testing.T) {
	runCase(t, journeyCase{scenario: "gm-box-qemu.yaml", image: "firmware.img.zst", fault: line.ServerRestart, wantPass: true})
}

// TestJourneyStation: the device sits on port 7 of the line switch, which announces itself by
// LLDP on the line network (the tap the guest's NIC is on) every 2 s. The agent hears it on
// its boot NIC and sends it with the hello; the server maps the port to station bench-7 of
// line-1, stores it with the run and shows the device there on the line overview.
func TestJourneyStation(t *testing.T) {
	runCase(t, journeyCase{scenario: "gm-box-qemu.yaml", image: "firmware.img.zst", wantPass: true, place: &placement{
		line: "line-1",
		// bench-6 is on the same switch's next port; bench-9 is the station the device's MAC
		// would get, were the switch silent: LLDP must win over it.
		stations: `  - {name: bench-6, lldp_port: "port 6", lldp_chassis: line1-sw}
  - {name: bench-7, lldp_port: "port 7", lldp_chassis: line1-sw}
  - {name: bench-9, macs: ["` + qemu.DefaultMAC + `"]}
`,
		lldp: netlab.LLDPPort{ChassisMAC: net.HardwareAddr{0x02, 0x4c, 0x49, 0x4e, 0x45, 0x01}, SystemName: "line1-sw",
			PortID: "port 7", PortDescription: "bench 7"},
		wantStation: "bench-7", wantSource: "lldp", wantPort: "lldp line1-sw port 7",
	}})
}
