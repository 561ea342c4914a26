package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/protocol"
)

// testRegistry has the inventory kinds and exec plus a kind with range-checked params, in
// the way the radio kinds plug in.
func testRegistry(t testing.TB) *checks.Registry {
	t.Helper()
	type sigParams struct {
		SSID         string `yaml:"ssid"`
		MinSignalDBm int    `yaml:"min_signal_dbm"`
		Band         struct {
			GHz float64 `yaml:"ghz"`
		} `yaml:"band"`
	}
	sig := checks.Define("radio.signal", "test kind",
		func() sigParams { return sigParams{MinSignalDBm: -80} },
		func(p sigParams) []checks.FieldError {
			var fe []checks.FieldError
			if p.SSID == "" {
				fe = append(fe, checks.FieldError{Field: "ssid", Message: "must be set"})
			}
			if p.MinSignalDBm < -120 || p.MinSignalDBm > 0 {
				fe = append(fe, checks.FieldError{Field: "min_signal_dbm", Message: "must be in [-120, 0]"})
			}
			if p.Band.GHz != 0 && p.Band.GHz != 2.4 && p.Band.GHz != 5 {
				fe = append(fe, checks.FieldError{Field: "band.ghz", Message: "must be 2.4 or 5"})
			}
			return fe
		},
		func(p sigParams) checks.Check {
			return checks.CheckFunc(func(ctx context.Context, env *checks.Env) (checks.Outcome, error) {
				return checks.Passf([]protocol.Measurement{checks.Text("ssid", p.SSID)}, "saw %s", p.SSID), nil
			})
		})
	push := checks.Define("radio.push", "test kind with a least timeout", nil, nil,
		func(p pushParams) checks.Check { return nil })
	reg, err := checks.New(checks.DiskPresent(), checks.MemoryMin(), checks.USBPresent(), checks.CPU(), checks.Exec(), sig, push)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// pushParams pushes data for Duration, so an attempt needs at least that long.
type pushParams struct {
	Duration checks.Duration `yaml:"duration"`
}

func (p *pushParams) MinTimeout() time.Duration { return p.Duration.D() + time.Second }

const good = `# yaml-language-server: $schema=./scenario.schema.json
name: gm-box-test
match:
  product: ["GM-Box*"]
vars:
  ssid: LINE-TEST
  min_dbm: "-70"
  min_ram: 1GiB
variants:
  - name: outdoor
    match: {product: "GM-Box*Outdoor"}
    vars: {min_dbm: "-60"}
defaults:
  timeout: 30s
  retries: 1
steps:
  - name: eMMC
    disk.present: {min_size: 16GB, transport: mmc}
  - name: RAM
    memory.min: {min: "${min_ram}"}
    retries: 0
  - name: Wi-Fi
    radio.signal:
      ssid: ${ssid}
      min_signal_dbm: ${min_dbm}
    timeout: 1m30s
    when: {modules: [wifi]}
    continue_on_fail: true
    prompt: Hold the box near the AP
`

func TestParseGood(t *testing.T) {
	s, err := Parse("good.yaml", []byte(good), testRegistry(t))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s.Name != "gm-box-test" || len(s.Steps) != 3 {
		t.Fatalf("parsed %q with %d steps", s.Name, len(s.Steps))
	}
	disk := s.Steps[0]
	if disk.Check != "disk.present" || disk.Timeout.D() != 30*time.Second || disk.Retries != 1 || disk.Line != 17 {
		t.Errorf("disk step = %+v", disk)
	}
	if p := disk.Params.(*checks.DiskPresentParams); p.MinSize != 16e9 || p.Transport != "mmc" || p.Count != 1 {
		t.Errorf("disk params = %+v", p)
	}
	if p := s.Steps[1].Params.(*checks.MemoryMinParams); p.Min != 1<<30 || s.Steps[1].Retries != 0 {
		t.Errorf("ram step = %+v params %+v", s.Steps[1], p)
	}
	w := s.Steps[2]
	if w.Timeout.D() != 90*time.Second || !w.ContinueOnFail || w.Prompt == "" || w.When == nil {
		t.Errorf("wifi step = %+v", w)
	}
}

func TestPlanVariants(t *testing.T) {
	s, err := Parse("good.yaml", []byte(good), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	minDBm := func(plan []Planned) int {
		// Reflect-free: the test kind's params are an unnamed struct; read through fmt.
		return parseMinDBm(t, fmt.Sprintf("%+v", plan[2].Step.Params))
	}
	tests := []struct {
		name     string
		inv      protocol.Inventory
		wantErr  error
		wantDBm  int
		wifiSkip bool
	}{
		{"base with wifi", protocol.Inventory{DMI: protocol.DMI{Product: "GM-Box 3"}, Modules: []string{"wifi"}}, nil, -70, false},
		{"outdoor variant", protocol.Inventory{DMI: protocol.DMI{Product: "GM-Box 3 Outdoor"}, Modules: []string{"wifi"}}, nil, -60, false},
		{"no wifi: skipped", protocol.Inventory{DMI: protocol.DMI{Product: "gm-box 2"}}, nil, -70, true},
		{"other product", protocol.Inventory{DMI: protocol.DMI{Product: "Other"}}, ErrNotApplicable, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := s.Plan(tt.inv)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Plan err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := minDBm(plan); got != tt.wantDBm {
				t.Errorf("min_signal_dbm = %d, want %d", got, tt.wantDBm)
			}
			if skipped := plan[2].Skip != ""; skipped != tt.wifiSkip {
				t.Errorf("wifi skipped = %v (%q), want %v", skipped, plan[2].Skip, tt.wifiSkip)
			}
			if plan[0].Check == nil {
				t.Error("disk step has no check")
			}
		})
	}
}

func parseMinDBm(t *testing.T, s string) int {
	i := strings.Index(s, "MinSignalDBm:")
	if i < 0 {
		t.Fatalf("no MinSignalDBm in %s", s)
	}
	var v int
	fmt.Sscanf(s[i+len("MinSignalDBm:"):], "%d", &v)
	return v
}

func TestLintErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each a substring of one error, in order
	}{
		{"syntax", "name: x\nsteps:\n  - name: a\n   bad indent: [\n", []string{"f.yaml:2:1: YAML syntax"}},
		{"empty", "", []string{"f.yaml:1:1: empty file"}},
		{"not a mapping", "- a\n- b\n", []string{"f.yaml:1:1: a scenario is a mapping"}},
		{"missing name and steps", "description: x\n", []string{"f.yaml:1:1: missing name", "f.yaml:1:1: missing steps"}},
		{"unknown top key", "name: x\nstep:\n  - {name: a, cpu: {cores: 1}}\n", []string{`f.yaml:1:1: missing steps`, `f.yaml:2:1: unknown key "step" (did you mean "steps"?)`}},
		{"unknown step key", "name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n    timeot: 3s\n", []string{`f.yaml:5:5: unknown key "timeot" (did you mean "timeout"?)`}},
		{"unknown kind", "name: x\nsteps:\n  - name: a\n    disk.presnt: {}\n", []string{`f.yaml:3:5: step "a" has no check`, `f.yaml:4:5: unknown check kind "disk.presnt" (did you mean "disk.present"?)`}},
		{"two kinds", "name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n    memory.min: {min: 1GB}\n", []string{`f.yaml:5:5: a step runs one check`}},
		{"unknown param", "name: x\nsteps:\n  - name: a\n    disk.present: {min_sise: 1GB}\n", []string{`f.yaml:4:20: unknown key "min_sise" (did you mean "min_size"?)`}},
		{"wrong type", "name: x\nsteps:\n  - name: a\n    cpu: {cores: many}\n", []string{`f.yaml:4:18: want an integer, got "many"`}},
		{"wrong type bool", "name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n    continue_on_fail: 3\n", []string{`f.yaml:5:23: want true or false, got the integer 3`}},
		{"bad duration", "name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n    timeout: 20\n", []string{`f.yaml:5:14: duration "20" needs a unit`}},
		{"bad duration word", "name: x\ndefaults: {timeout: soon}\nsteps:\n  - name: a\n    cpu: {cores: 1}\n", []string{`f.yaml:2:21: "soon" is not a duration`}},
		{"zero timeout", "name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n    timeout: 0s\n", []string{`f.yaml:5:14: timeout must be greater than zero`}},
		{"bad size", "name: x\nsteps:\n  - name: a\n    disk.present: {min_size: 16XB}\n", []string{`f.yaml:4:30: "16XB": unknown size unit`}},
		{"impossible threshold", "name: x\nsteps:\n  - name: a\n    radio.signal: {ssid: A, min_signal_dbm: 10}\n", []string{`f.yaml:4:45: radio.signal: min_signal_dbm: must be in [-120, 0]`}},
		{"nested field error", "name: x\nsteps:\n  - name: a\n    radio.signal:\n      ssid: A\n      band: {ghz: 3}\n", []string{`f.yaml:6:19: radio.signal: band.ghz: must be 2.4 or 5`}},
		{"missing required param", "name: x\nsteps:\n  - name: a\n    radio.signal:\n", []string{`f.yaml:4:5: radio.signal: ssid: must be set`}},
		{"impossible cores", "name: x\nsteps:\n  - name: a\n    cpu: {cores: 2, min_cores: 4}\n", []string{`f.yaml:4:32: cpu: min_cores: min_cores 4 > cores 2 can never pass`}},
		{"bad vid:pid", "name: x\nsteps:\n  - name: a\n    usb.present: {id: 2c7c-0125}\n", []string{`f.yaml:4:23: usb.present: id: "2c7c-0125" is not vid:pid`}},
		{"duplicate step names", "name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n  - name: A\n    cpu: {cores: 1}\n", []string{`f.yaml:5:11: duplicate step name "A" (first at line 3)`}},
		{"duplicate key", "name: x\nsteps:\n  - name: a\n    name: b\n    cpu: {cores: 1}\n", []string{`f.yaml:4:5: duplicate key "name" (first at line 3)`}},
		{"retries range", "name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n    retries: -1\n", []string{`f.yaml:5:14: retries must be in [0, 100]`}},
		{"undefined var", "name: x\nvars: {ssid: A}\nsteps:\n  - name: a\n    radio.signal: {ssid: \"${sid}\"}\n", []string{`f.yaml:5:26: undefined variable "sid" (declare it under vars) (did you mean "ssid"?)`}},
		{"variant-only error", "name: x\nvars: {dbm: \"-50\"}\nvariants:\n  - name: weak\n    match: {product: W}\n    vars: {dbm: \"-150\"}\nsteps:\n  - name: a\n    radio.signal: {ssid: A, min_signal_dbm: \"${dbm}\"}\n",
			[]string{`f.yaml:9:45: radio.signal: min_signal_dbm: must be in [-120, 0] (with variant weak)`}},
		{"variant undeclared var", "name: x\nvars: {dbm: \"-50\"}\nvariants:\n  - match: {product: W}\n    vars: {dmb: \"-60\"}\nsteps:\n  - name: a\n    cpu: {cores: 1}\n", []string{`f.yaml:5:12: variant sets "dmb", which is not declared under vars (did you mean "dbm"?)`}},
		{"unknown module", "name: x\nmatch: {modules: [lte, wfi]}\nsteps:\n  - name: a\n    cpu: {cores: 1}\n", []string{`f.yaml:2:24: unknown module "wfi"`}},
		{"step not a mapping", "name: x\nsteps:\n  - just a string\n", []string{`f.yaml:3:5: a step is a mapping`}},
		{"timeout below the kind's need", "name: x\nsteps:\n  - name: a\n    radio.push: {duration: 10s}\n    timeout: 5s\n", []string{`f.yaml:5:14: timeout 5s is shorter than radio.push needs with these parameters (11s)`}},
		{"default timeout below the kind's need", "name: x\ndefaults: {timeout: 3s}\nsteps:\n  - name: a\n    radio.push: {duration: 10s}\n", []string{`f.yaml:5:5: timeout 3s is shorter than radio.push needs`}},
		{"two documents", "name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n---\nname: y\n", []string{`f.yaml:5:1: a second YAML document`}},
		{"empty steps", "name: x\nsteps: []\n", []string{`f.yaml:2:8: steps is empty`}},
		{"every error reported", "name: x\nsteps:\n  - name: a\n    cpu: {cores: x}\n  - name: b\n    memory.min: {min: 0}\n  - name: c\n    exec: {command: []}\n",
			[]string{`f.yaml:4:18: want an integer`, `f.yaml:6:23: memory.min: min: must be set`, `f.yaml:8:21: exec: command: must name a program`}},
	}
	reg := testRegistry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := Lint("f.yaml", []byte(tt.yaml), reg)
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), errs)
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

func TestUnits(t *testing.T) {
	tests := []struct {
		in   string
		want checks.Size
		bad  bool
	}{
		{"16GB", 16e9, false}, {"16GiB", 16 << 30, false}, {"512MiB", 512 << 20, false},
		{"512mb", 512e6, false}, {"1.5GB", 1.5e9, false}, {"100", 100, false}, {"4 KiB", 4096, false},
		{"16XB", 0, true}, {"-1GB", 0, true}, {"GB", 0, true}, {"", 0, true},
	}
	for _, tt := range tests {
		got, err := checks.ParseSize(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, bad=%v", tt.in, got, err, tt.want, tt.bad)
		}
	}
	for in, want := range map[string]time.Duration{"20s": 20 * time.Second, "1m30s": 90 * time.Second, "500ms": 500 * time.Millisecond} {
		if got, err := checks.ParseDuration(in); err != nil || got.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"20", "-1s", "soon"} {
		if _, err := checks.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("name: x\nvars: {a: \"${a}\"}\nsteps:\n  - &s {name: a, exec: {command: [\"${a}\"]}}\n  - *s\n"))
	f.Add([]byte(parallelGood))
	f.Add([]byte("name: x\nsteps:\n  - parallel:\n      - parallel: [{name: a, cpu: {}}]\n  - parallel: []\n"))
	f.Add([]byte("steps:\n  - <<: {name: a}\n    disk.present: {min_size: 1.5e30GB}\n"))
	reg := testRegistry(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data, reg)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %v is not a non-empty ErrorList", err)
			}
			for _, e := range list {
				if e.Line < 1 || e.Col < 1 || e.Msg == "" || e.File != "fuzz.yaml" {
					t.Fatalf("bad error %+v", e)
				}
			}
			return
		}
		if s.Name == "" || len(s.Steps) == 0 {
			t.Fatalf("valid scenario without name or steps: %+v", s)
		}
		if _, err := s.Plan(protocol.Inventory{}); err != nil && !errors.Is(err, ErrNotApplicable) {
			t.Fatalf("Plan of a valid scenario: %v", err)
		}
	})
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: x\nsteps:\n  - name: a\n    exec:\n      command: [x]\n      env:\n        a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "        a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	start := time.Now()
	errs := Lint("bomb.yaml", []byte(b.String()), testRegistry(t))
	if len(errs) == 0 || !strings.Contains(errs.Error(), "beyond") {
		t.Errorf("errors = %v", errs)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("lint took %s", d)
	}
}
