package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/protocol"
)

// TestLintExampleScenarios lints every scenario shipped in scenarios/, as CI does.
func TestLintExampleScenarios(t *testing.T) {
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("example scenarios: %v %v", files, err)
	}
	var out, errOut bytes.Buffer
	if code := scenarioLint(&out, &errOut, files); code != 0 {
		t.Fatalf("scenario lint %v exited %d:\n%s%s", files, code, out.String(), errOut.String())
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if !strings.HasPrefix(string(b), "# yaml-language-server: $schema=./scenario.schema.json\n") {
			t.Errorf("%s lacks the yaml-language-server schema header", f)
		}
	}
}

func TestLintReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("name: g\nsteps:\n  - name: a\n    cpu: {min_cores: 1}\n"), 0o644)
	os.WriteFile(bad, []byte("name: b\nsteps:\n  - name: a\n    lte.modem: {min_csq: 40}\n    timeout: 20\n  - name: a\n    cpu: {min_cores: 1}\n"), 0o644)
	var out, errOut bytes.Buffer
	code := scenarioLint(&out, &errOut, []string{good, bad, filepath.Join(dir, "missing.yaml")})
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	want := []string{
		bad + ":4:26: lte.modem: min_csq: must be in [0, 31]",
		bad + ":5:14: duration \"20\" needs a unit",
		bad + ":6:11: duplicate step name \"a\" (first at line 3)",
		filepath.Join(dir, "missing.yaml") + ":1:1: open",
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
		}
	}
}

// TestRunOnFakeTree runs scenarios against the inventory test tree of a GM-Box 3 LTE: the
// inventory steps of the example pass; a scenario asking for more fails and says why.
func TestRunOnFakeTree(t *testing.T) {
	root := "../../agent/inventory/testdata/gmbox"
	dir := t.TempDir()
	sc := filepath.Join(dir, "s.yaml")
	os.WriteFile(sc, []byte(`name: tree
match: {product: "GM-Box 3 LTE*", modules: [lte, wifi]}
steps:
  - name: CPU
    cpu: {model: "*x6425E*", cores: 4}
  - name: eMMC
    disk.present: {transport: mmc, min_size: 14GiB}
  - name: Modem on USB
    usb.present: {id: "2c7c:0125"}
  - name: RAM
    memory.min: {min: 16GB}
    continue_on_fail: true
  - name: NVMe
    disk.present: {transport: nvme, min_size: 400GB}
`), 0o644)
	results := filepath.Join(dir, "results.json")
	var out, errOut bytes.Buffer
	code := scenarioRun(context.Background(), &out, &errOut, []string{"--color", "never", "--root", root, "--json", results, sc})
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s%s", code, out.String(), errOut.String())
	}
	for _, w := range []string{"PASS  CPU", "PASS  eMMC", "PASS  Modem on USB", "FAIL  RAM", "PASS  NVMe", "FAILED STEP: RAM", "MEASURED:    memory_bytes="} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	var res struct {
		Status string
		Steps  []struct {
			Name, Status string
			Measurements []struct{ Name string }
		}
	}
	b, _ := os.ReadFile(results)
	if err := json.Unmarshal(b, &res); err != nil || res.Status != "fail" || len(res.Steps) != 5 || len(res.Steps[3].Measurements) == 0 {
		t.Errorf("results %s: %+v %v", b, res, err)
	}

	// A scenario for another product does not run without --force.
	other := filepath.Join(dir, "o.yaml")
	os.WriteFile(other, []byte("name: o\nmatch: {product: Other}\nsteps:\n  - name: CPU\n    cpu: {min_cores: 1}\n"), 0o644)
	out.Reset()
	errOut.Reset()
	if code := scenarioRun(context.Background(), &out, &errOut, []string{"--root", root, other}); code != 3 || !strings.Contains(errOut.String(), "does not apply") {
		t.Errorf("not applicable: exit %d %s", code, errOut.String())
	}
	if code := scenarioRun(context.Background(), &out, &errOut, []string{"--root", root, "--force", other}); code != 0 {
		t.Errorf("--force: exit %d", code)
	}
}

// TestExamplesApplyToTheirVariants checks each example's match against the inventories of
// the variants it is written for, so that one line serves several variants as intended.
func TestExamplesApplyToTheirVariants(t *testing.T) {
	reg := checks.Default()
	inv := func(product string, mods ...string) protocol.Inventory {
		return protocol.Inventory{DMI: protocol.DMI{Product: product}, Modules: mods}
	}
	tests := []struct {
		file    string
		inv     protocol.Inventory
		applies bool
	}{
		{"gm-box-base.yaml", inv("GM-Box 3", "buttons"), true},
		{"gm-box-base.yaml", inv("GM-Box 3", "buttons", "wifi"), false},
		{"gm-box-wifi-bt.yaml", inv("GM-Box 3 WiFi", "wifi", "bluetooth", "buttons"), true},
		{"gm-box-wifi-bt.yaml", inv("GM-Box 3 LTE", "wifi", "bluetooth", "lte"), false},
		{"gm-box-lte-wifi-bt.yaml", inv("GM-Box 3 LTE", "wifi", "bluetooth", "lte"), true},
		{"gm-box-lte-wifi-bt.yaml", inv("GM-Box 3 LTE Outdoor", "wifi", "bluetooth", "lte"), true},
		{"gm-box-lte-wifi-bt.yaml", inv("GM-Box 3", "buttons"), false},
		{"gm-box-qemu.yaml", inv("Standard PC (Q35 + ICH9, 2009)"), true},
	}
	for _, tt := range tests {
		s, err := scenario.ParseFile(filepath.Join("../../scenarios", tt.file), reg)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := s.Plan(tt.inv)
		if (err == nil) != tt.applies {
			t.Errorf("%s on %q %v: err %v, want applies=%v", tt.file, tt.inv.DMI.Product, tt.inv.Modules, err, tt.applies)
		}
		if err == nil && len(plan) != len(s.Steps) {
			t.Errorf("%s: plan of %d steps, scenario has %d", tt.file, len(plan), len(s.Steps))
		}
	}
	// The outdoor variant raises the CSQ limit.
	s, _ := scenario.ParseFile("../../scenarios/gm-box-lte-wifi-bt.yaml", reg)
	for product, want := range map[string]int{"GM-Box 3 LTE": 10, "GM-Box 3 LTE Outdoor": 15} {
		plan, err := s.Plan(inv(product, "lte"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range plan {
			if lp, ok := p.Step.Params.(*checks.LTEModemParams); ok && lp.MinCSQ != want {
				t.Errorf("%s: min_csq %d, want %d", product, lp.MinCSQ, want)
			}
		}
	}
}

// TestRunColour: scenario run colours only a terminal. Into a file or a pipe (here a buffer),
// with a colour TERM and without NO_COLOR, the output has no escape codes; --color always
// shows that this run would otherwise have some.
func TestRunColour(t *testing.T) {
	root := "../../agent/inventory/testdata/gmbox"
	sc := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(sc, []byte("name: c\nsteps:\n  - name: CPU\n    cpu: {min_cores: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TERM", "xterm-256color")
	for _, tc := range []struct {
		name    string
		noColor string
		args    []string
		want    bool
	}{
		{"auto, not a terminal", "", nil, false},
		{"auto, NO_COLOR", "1", nil, false},
		{"always", "", []string{"--color", "always"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NO_COLOR", tc.noColor)
			var out, errOut bytes.Buffer
			args := append(append([]string{"--root", root}, tc.args...), sc)
			if code := scenarioRun(context.Background(), &out, &errOut, args); code != 0 {
				t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
			}
			if got := strings.Contains(out.String(), "\x1b["); got != tc.want {
				t.Errorf("escape codes %v, want %v:\n%q", got, tc.want, out.String())
			}
		})
	}
}
