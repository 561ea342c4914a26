package operator

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/protocol"
)

func fixed(o checks.Outcome) checks.Check {
	return checks.CheckFunc(func(context.Context, *checks.Env) (checks.Outcome, error) { return o, nil })
}

func planned(name, kind string, c checks.Check) scenario.Planned {
	return scenario.Planned{Step: scenario.Step{Name: name, Check: kind, Timeout: checks.Duration(time.Second)}, Check: c}
}

func runWith(t *testing.T, color bool, plan []scenario.Planned) string {
	t.Helper()
	var buf bytes.Buffer
	con := New(&buf, color)
	con.Plan("gm-box-lte", plan)
	r := &scenario.Runner{Operator: con, OnEvent: con.Event}
	rep := r.Run(context.Background(), plan)
	con.Summary("gm-box-lte", rep)
	return buf.String()
}

func TestFailRun(t *testing.T) {
	prompted := checks.CheckFunc(func(ctx context.Context, env *checks.Env) (checks.Outcome, error) {
		env.Operator.Prompt(env.Step, "Press POWER")
		return checks.Passf(nil, "KEY_POWER pressed and released"), nil
	})
	plan := []scenario.Planned{
		planned("eMMC", "disk.present", fixed(checks.Passf([]protocol.Measurement{checks.Num("size_bytes", 15758000128, "B")}, "mmc >= 14GiB: mmcblk0"))),
		planned("Power button", "button.press", prompted),
		planned("LTE modem", "lte.modem", fixed(checks.Failf([]protocol.Measurement{checks.Num("csq", 7, ""), checks.Num("signal_dbm", -99, "dBm")}, "CSQ 7 (-99 dBm) < 10"))),
		planned("Ethernet", "ethernet.link", fixed(checks.Passf(nil, "up"))),
	}
	out := runWith(t, false, plan)
	for _, want := range []string{
		"TEST SCENARIO: gm-box-lte (4 steps)",
		"[1/4]  eMMC",
		"[1/4] PASS  eMMC",
		">>> Press POWER <<<",
		"[3/4] FAIL  LTE modem     CSQ 7 (-99 dBm) < 10",
		"measured: csq=7, signal_dbm=-99 dBm",
		"[4/4] SKIP  Ethernet",
		"#####   ###",
		"FAILED STEP: LTE modem",
		"REASON:      CSQ 7 (-99 dBm) < 10",
		"MEASURED:    csq=7, signal_dbm=-99 dBm",
		"SKIPPED Ethernet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("ANSI escapes without colour")
	}
	if testing.Verbose() {
		t.Log("\n" + out)
	}
}

func TestPassRunColour(t *testing.T) {
	out := runWith(t, true, []scenario.Planned{planned("RAM", "memory.min", fixed(checks.Passf(nil, "RAM 8GiB >= 4GiB")))})
	if !strings.Contains(out, "all 1 steps passed") || !strings.Contains(out, green) {
		t.Errorf("output:\n%s", out)
	}
	// The banner spells PASS: the S glyph's first row.
	if !strings.Contains(out, " ####") {
		t.Errorf("no banner:\n%s", out)
	}
}

func TestColorFor(t *testing.T) {
	for term, want := range map[string]bool{"": false, "dumb": false, "vt100": false, "vt102": false, "linux": true, "xterm-256color": true} {
		if ColorFor(term) != want {
			t.Errorf("ColorFor(%q) = %v", term, !want)
		}
	}
}
