package scenario

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/protocol"
)

// sleeper passes (or fails) after d, or returns early when its context ends.
func sleeper(d time.Duration, pass bool) checks.Check {
	return checks.CheckFunc(func(ctx context.Context, env *checks.Env) (checks.Outcome, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return checks.Outcome{}, ctx.Err()
		}
		if !pass {
			return checks.Failf(nil, "failed after %s", d), nil
		}
		return checks.Passf(nil, "done after %s", d), nil
	})
}

func grouped(g int, p Planned) Planned {
	p.Step.Group = g
	p.Step.Timeout = checks.Duration(5 * time.Second)
	return p
}

func TestParallelGroup(t *testing.T) {
	const d = 200 * time.Millisecond
	tests := []struct {
		name       string
		plan       []Planned
		maxTime    time.Duration // the whole run must end within this
		minTime    time.Duration
		wantStatus protocol.Status
		wantFailed string
		want       []string // per step in plan order: status/message substring
	}{
		{
			name: "two 200 ms steps take 200 ms, not 400",
			plan: []Planned{
				grouped(1, step("a", 0, false, sleeper(d, true))),
				grouped(1, step("b", 0, false, sleeper(d, true))),
			},
			minTime: d, maxTime: d + 150*time.Millisecond,
			wantStatus: protocol.StatusPass,
			want:       []string{"pass/done", "pass/done"},
		},
		{
			name: "results in declaration order whatever finishes first",
			plan: []Planned{
				grouped(1, step("slow", 0, false, sleeper(d, true))),
				grouped(1, step("fast", 0, false, sleeper(10*time.Millisecond, true))),
				step("after", 0, false, sleeper(time.Millisecond, true)),
			},
			minTime: d, maxTime: d + 150*time.Millisecond,
			wantStatus: protocol.StatusPass,
			want:       []string{"pass/200ms", "pass/10ms", "pass/1ms"},
		},
		{
			name: "first failure cancels the rest of the group and stops the run",
			plan: []Planned{
				grouped(1, step("long", 0, false, sleeper(10*time.Second, true))),
				grouped(1, step("broken", 0, false, sleeper(50*time.Millisecond, false))),
				step("after", 0, false, sleeper(time.Millisecond, true)),
			},
			maxTime:    time.Second,
			wantStatus: protocol.StatusFail, wantFailed: "broken",
			want: []string{`skipped/cancelled: step "broken" in the same parallel group failed`, "fail/failed after 50ms", `skipped/not run: step "broken" failed`},
		},
		{
			name: "continue_on_fail in a group cancels nothing",
			plan: []Planned{
				grouped(1, step("a", 0, false, sleeper(d, true))),
				grouped(1, step("soft", 0, true, sleeper(10*time.Millisecond, false))),
				step("after", 0, false, sleeper(time.Millisecond, true)),
			},
			minTime: d, maxTime: d + 150*time.Millisecond,
			wantStatus: protocol.StatusFail, wantFailed: "soft",
			want: []string{"pass/done", "fail/failed", "pass/done"},
		},
		{
			name: "retries run inside the group",
			plan: []Planned{
				grouped(1, step("flaky", 2, false, sc(fail("weak", 5), pass("ok", 12)))),
				grouped(1, step("b", 0, false, sleeper(50*time.Millisecond, true))),
			},
			maxTime:    time.Second,
			wantStatus: protocol.StatusPass,
			want:       []string{"pass/ok", "pass/done"},
		},
		{
			name: "a timeout is per step",
			plan: []Planned{
				func() Planned {
					p := grouped(1, step("stuck", 0, false, sc(blockCtx)))
					p.Step.Timeout = checks.Duration(50 * time.Millisecond)
					return p
				}(),
				grouped(1, step("b", 0, true, sleeper(10*time.Millisecond, true))),
			},
			maxTime:    time.Second,
			wantStatus: protocol.StatusFail, wantFailed: "stuck",
			want: []string{"fail/timed out after 50ms", "pass/done"},
		},
		{
			name: "two adjacent groups run one after the other",
			plan: []Planned{
				grouped(1, step("a1", 0, false, sleeper(d/2, true))),
				grouped(1, step("a2", 0, false, sleeper(d/2, true))),
				grouped(2, step("b1", 0, false, sleeper(d/2, true))),
				grouped(2, step("b2", 0, false, sleeper(d/2, true))),
			},
			minTime: d, maxTime: d + 150*time.Millisecond,
			wantStatus: protocol.StatusPass,
			want:       []string{"pass/", "pass/", "pass/", "pass/"},
		},
		{
			name: "a skipped step in a group",
			plan: []Planned{
				grouped(1, Planned{Step: Step{Name: "lte", Check: "fake"}, Skip: "not on this device: no lte module"}),
				grouped(1, step("b", 0, false, sleeper(10*time.Millisecond, true))),
			},
			maxTime:    time.Second,
			wantStatus: protocol.StatusPass,
			want:       []string{"skipped/no lte module", "pass/done"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var events []string
			var inside atomic.Int32
			r := &Runner{Grace: 20 * time.Millisecond, OnEvent: func(ev Event) {
				if inside.Add(1) != 1 {
					t.Error("OnEvent called for two events at once")
				}
				defer inside.Add(-1)
				mu.Lock()
				events = append(events, ev.Step.Name+":"+string(ev.Status))
				mu.Unlock()
			}}
			start := time.Now()
			rep := r.Run(context.Background(), tt.plan)
			took := time.Since(start)
			if took < tt.minTime || took > tt.maxTime {
				t.Errorf("run took %s, want between %s and %s", took, tt.minTime, tt.maxTime)
			}
			if rep.Status != tt.wantStatus || rep.FailedStep != tt.wantFailed {
				t.Errorf("report status %s failed %q, want %s %q", rep.Status, rep.FailedStep, tt.wantStatus, tt.wantFailed)
			}
			if len(rep.Steps) != len(tt.want) {
				t.Fatalf("%d results, want %d", len(rep.Steps), len(tt.want))
			}
			for i, w := range tt.want {
				status, msg, _ := strings.Cut(w, "/")
				res := rep.Steps[i]
				if res.Name != tt.plan[i].Step.Name || string(res.Status) != status || !strings.Contains(res.Message, msg) {
					t.Errorf("step %d = %s %s/%s, want %s %s", i, res.Name, res.Status, res.Message, tt.plan[i].Step.Name, w)
				}
			}
			// Every step ends with exactly one final event.
			for _, p := range tt.plan {
				n := 0
				for _, ev := range events {
					if name, st, _ := strings.Cut(ev, ":"); name == p.Step.Name && st != string(protocol.StatusRunning) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("step %s has %d final events in %v", p.Step.Name, n, events)
				}
			}
		})
	}
}

// TestParallelLiveEvents: both steps report running before either finishes, and the fast
// one reports its result before the slow one does (not in plan order).
func TestParallelLiveEvents(t *testing.T) {
	var events []string
	r := &Runner{OnEvent: func(ev Event) { events = append(events, ev.Step.Name+":"+string(ev.Status)) }}
	r.Run(context.Background(), []Planned{
		grouped(1, step("slow", 0, false, sleeper(150*time.Millisecond, true))),
		grouped(1, step("fast", 0, false, sleeper(10*time.Millisecond, true))),
	})
	pos := map[string]int{}
	for i, ev := range events {
		pos[ev] = i
	}
	if len(events) != 4 || pos["slow:running"] > 1 || pos["fast:running"] > 1 || pos["fast:pass"] != 2 || pos["slow:pass"] != 3 {
		t.Errorf("events = %v", events)
	}
}

// promptStep is a button.press-like step: it prompts and holds the operator for d.
func promptStep(name string, d time.Duration, busy *atomic.Int32, overlap *atomic.Bool) Planned {
	p := step(name, 0, false, checks.CheckFunc(func(ctx context.Context, env *checks.Env) (checks.Outcome, error) {
		if busy.Add(1) > 1 {
			overlap.Store(true)
		}
		defer busy.Add(-1)
		env.Operator.Prompt(env.Step, "Press "+name)
		time.Sleep(d)
		return checks.Passf(nil, "pressed"), nil
	}))
	p.Step.Params = &checks.ButtonPressParams{Key: "KEY_POWER"}
	return grouped(1, p)
}

// TestParallelPromptsSerialised: two prompting steps in a group run one after the other, in
// plan order, while a non-prompting step runs beside them.
func TestParallelPromptsSerialised(t *testing.T) {
	var busy atomic.Int32
	var overlap atomic.Bool
	op := &promptRec{}
	plan := []Planned{
		grouped(1, step("scan", 0, false, sleeper(200*time.Millisecond, true))),
		promptStep("power", 100*time.Millisecond, &busy, &overlap),
		promptStep("reset", 100*time.Millisecond, &busy, &overlap),
	}
	start := time.Now()
	rep := (&Runner{Operator: op}).Run(context.Background(), plan)
	took := time.Since(start)
	if rep.Status != protocol.StatusPass {
		t.Fatalf("report = %+v", rep)
	}
	if overlap.Load() {
		t.Error("two prompting steps ran at once")
	}
	if len(op.prompts) != 2 || op.prompts[0] != "power: Press power" || op.prompts[1] != "reset: Press reset" {
		t.Errorf("prompts = %v", op.prompts)
	}
	// scan (200 ms) beside power+reset (2 x 100 ms): about 200 ms, not 400.
	if took < 200*time.Millisecond || took > 350*time.Millisecond {
		t.Errorf("run took %s", took)
	}
}

// A step prompt (Step.Prompt) counts as prompting too.
func TestPromptsOperator(t *testing.T) {
	for _, tt := range []struct {
		s    Step
		want bool
	}{
		{Step{}, false},
		{Step{Prompt: "Hold the box near the AP"}, true},
		{Step{Params: &checks.ButtonPressParams{}}, true},
		{Step{Params: &checks.DiskPresentParams{}}, false},
	} {
		if got := tt.s.PromptsOperator(); got != tt.want {
			t.Errorf("%+v: PromptsOperator = %v", tt.s, got)
		}
	}
}

func TestParallelCancelRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	rep := (&Runner{}).Run(ctx, []Planned{
		grouped(1, step("a", 0, false, sleeper(10*time.Second, true))),
		grouped(1, step("b", 0, false, sleeper(10*time.Second, true))),
		step("c", 0, false, sleeper(time.Millisecond, true)),
	})
	if rep.Status != protocol.StatusFail || rep.Steps[0].Status != protocol.StatusError || rep.Steps[1].Status != protocol.StatusError || rep.Steps[2].Status != protocol.StatusSkipped {
		t.Errorf("report = %+v", rep)
	}
}

const parallelGood = `name: par
steps:
  - name: disk
    disk.present: {min_size: 1GB}
  - name: radios while the operator works
    parallel:
      - name: Wi-Fi
        radio.signal: {ssid: LINE-TEST}
      - name: CPU
        cpu: {min_cores: 1}
  - parallel:
      - name: RAM
        memory.min: {min: 1GiB}
`

func TestParseParallel(t *testing.T) {
	s, err := Parse("par.yaml", []byte(parallelGood), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range s.Steps {
		got = append(got, st.Name+"/"+strings.Repeat("g", st.Group)+"/"+st.GroupName)
	}
	want := "disk///Wi-Fi/g/radios while the operator works,CPU/g/radios while the operator works,RAM/gg/"
	if strings.Join(got, ",") != strings.Replace(want, "disk///", "disk//,", 1) {
		t.Errorf("steps = %v", got)
	}
	plan, err := s.Plan(protocol.Inventory{})
	if err != nil || len(plan) != 4 || plan[1].Step.Group != 1 || plan[3].Step.Group != 2 || plan[1].Check == nil {
		t.Fatalf("plan = %+v, %v", plan, err)
	}
}

func TestLintParallel(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"empty group", "name: x\nsteps:\n  - parallel: []\n",
			[]string{"x.yaml:3:15: parallel group is empty"}},
		{"not a list", "name: x\nsteps:\n  - parallel: {name: a}\n",
			[]string{"x.yaml:3:5: parallel must be a list of steps, got a mapping"}},
		{"nothing", "name: x\nsteps:\n  - parallel:\n",
			[]string{"x.yaml:3:5: parallel must be a list of steps, got nothing"}},
		{"nested", "name: x\nsteps:\n  - parallel:\n      - parallel:\n          - {name: a, cpu: {cores: 1}}\n",
			[]string{"x.yaml:4:9: parallel groups do not nest"}},
		{"check kind on the group", "name: x\nsteps:\n  - parallel:\n      - {name: a, cpu: {cores: 1}}\n    cpu: {}\n",
			[]string{`x.yaml:5:5: a parallel group runs the steps listed under it: put "cpu" in a step of its own there`}},
		{"unknown key", "name: x\nsteps:\n  - parallel:\n      - {name: a, cpu: {cores: 1}}\n    timeout: 3s\n",
			[]string{`x.yaml:5:5: unknown key "timeout" in a parallel group (known: name, parallel)`}},
		{"duplicate name across group", "name: x\nsteps:\n  - {name: a, cpu: {cores: 1}}\n  - parallel:\n      - {name: A, cpu: {cores: 1}}\n",
			[]string{`x.yaml:5:16: duplicate step name "A" (first at line 3)`}},
		{"bad step inside", "name: x\nsteps:\n  - parallel:\n      - {name: a, cpu: {cores: x}}\n",
			[]string{"x.yaml:4:"}},
		{"step without check inside", "name: x\nsteps:\n  - parallel:\n      - {name: a}\n",
			[]string{`x.yaml:4:9: step "a" has no check`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := Lint("x.yaml", []byte(tt.yaml), testRegistry(t))
			got := errs.Error()
			if len(errs) != len(tt.want) {
				t.Errorf("errors:\n%s\nwant %d", got, len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("errors:\n%s\nwant %q", got, w)
				}
			}
		})
	}
}
