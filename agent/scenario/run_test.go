package scenario

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/protocol"
)

// scripted is a check that returns the next outcome of its script on each attempt.
type scripted struct {
	mu    sync.Mutex
	calls int
	steps []func(ctx context.Context) (checks.Outcome, error)
}

func (s *scripted) Run(ctx context.Context, env *checks.Env) (checks.Outcome, error) {
	s.mu.Lock()
	i := min(s.calls, len(s.steps)-1)
	s.calls++
	s.mu.Unlock()
	return s.steps[i](ctx)
}

func pass(reason string, v float64) func(context.Context) (checks.Outcome, error) {
	return func(context.Context) (checks.Outcome, error) {
		return checks.Passf([]protocol.Measurement{checks.Num("csq", v, "")}, "%s", reason), nil
	}
}

func fail(reason string, v float64) func(context.Context) (checks.Outcome, error) {
	return func(context.Context) (checks.Outcome, error) {
		return checks.Failf([]protocol.Measurement{checks.Num("csq", v, "")}, "%s", reason), nil
	}
}

func blockCtx(ctx context.Context) (checks.Outcome, error) {
	<-ctx.Done()
	return checks.Outcome{}, ctx.Err()
}

func ignoreCtx(context.Context) (checks.Outcome, error) {
	time.Sleep(time.Hour)
	return checks.Outcome{}, nil
}

type promptRec struct {
	mu      sync.Mutex
	prompts []string
}

func (p *promptRec) Prompt(step, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prompts = append(p.prompts, step+": "+msg)
}

func step(name string, retries int, cont bool, c checks.Check) Planned {
	return Planned{Step: Step{Name: name, Check: "fake", Retries: retries, RetryDelay: checks.Duration(time.Millisecond), Timeout: checks.Duration(50 * time.Millisecond), ContinueOnFail: cont}, Check: c}
}

func sc(fs ...func(context.Context) (checks.Outcome, error)) *scripted { return &scripted{steps: fs} }

func TestRunner(t *testing.T) {
	tests := []struct {
		name       string
		plan       []Planned
		wantStatus protocol.Status
		wantFailed string
		want       []string // per step: status/attempts/message substring
	}{
		{"all pass", []Planned{step("a", 0, false, sc(pass("ok a", 20))), step("b", 0, false, sc(pass("ok b", 21)))},
			protocol.StatusPass, "", []string{"pass/1/ok a", "pass/1/ok b"}},
		{"retry then pass", []Planned{step("a", 2, false, sc(fail("weak", 5), fail("weak", 7), pass("ok", 12)))},
			protocol.StatusPass, "", []string{"pass/3/ok"}},
		{"retries exhausted stops the run", []Planned{step("a", 1, false, sc(fail("CSQ 7 < 10", 7))), step("b", 0, false, sc(pass("ok", 1)))},
			protocol.StatusFail, "a", []string{"fail/2/CSQ 7 < 10", "skipped/0/not run: step \"a\" failed"}},
		{"continue_on_fail", []Planned{step("a", 0, true, sc(fail("no", 1))), step("b", 0, false, sc(pass("ok", 1)))},
			protocol.StatusFail, "a", []string{"fail/1/no", "pass/1/ok"}},
		{"timeout", []Planned{step("a", 0, false, sc(blockCtx))}, protocol.StatusFail, "a", []string{"fail/1/timed out after 50ms"}},
		{"check ignoring ctx is abandoned", []Planned{step("a", 0, false, sc(ignoreCtx))}, protocol.StatusFail, "a", []string{"fail/1/timed out"}},
		{"error", []Planned{step("a", 0, false, sc(func(context.Context) (checks.Outcome, error) {
			return checks.Outcome{}, errors.New("open /dev/ttyUSB2: permission denied")
		}))},
			protocol.StatusFail, "a", []string{"error/1/permission denied"}},
		{"panic", []Planned{step("a", 0, false, sc(func(context.Context) (checks.Outcome, error) { panic("boom") }))},
			protocol.StatusFail, "a", []string{"error/1/check panicked: boom"}},
		{"when skip", []Planned{{Step: Step{Name: "a", Check: "fake"}, Skip: "not on this device: no lte module"}, step("b", 0, false, sc(pass("ok", 1)))},
			protocol.StatusPass, "", []string{"skipped/0/no lte module", "pass/1/ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []string
			r := &Runner{Grace: 20 * time.Millisecond, OnEvent: func(ev Event) {
				events = append(events, ev.Step.Name+":"+string(ev.Status))
			}}
			rep := r.Run(context.Background(), tt.plan)
			if rep.Status != tt.wantStatus || rep.FailedStep != tt.wantFailed {
				t.Errorf("report status %s failed %q, want %s %q", rep.Status, rep.FailedStep, tt.wantStatus, tt.wantFailed)
			}
			if len(rep.Steps) != len(tt.want) {
				t.Fatalf("%d results, want %d", len(rep.Steps), len(tt.want))
			}
			for i, w := range tt.want {
				parts := strings.SplitN(w, "/", 3)
				res := rep.Steps[i]
				if string(res.Status) != parts[0] || strings.TrimSpace(parts[1]) != strconv.Itoa(res.Attempts) || !strings.Contains(res.Message, parts[2]) {
					t.Errorf("step %d = %s/%d/%s, want %s", i, res.Status, res.Attempts, res.Message, w)
				}
			}
			// Every run step reports running first and its final status last.
			if len(events) == 0 || !strings.HasSuffix(events[len(events)-1], string(rep.Steps[len(rep.Steps)-1].Status)) {
				t.Errorf("events %v", events)
			}
		})
	}
}

func TestRunnerMeasurementsOnFailAndPrompt(t *testing.T) {
	op := &promptRec{}
	p := step("LTE", 0, false, sc(fail("CSQ 7 < 10", 7)))
	p.Step.Prompt = "Check the antenna"
	var got []Event
	r := &Runner{Operator: op, OnEvent: func(ev Event) { got = append(got, ev) }}
	rep := r.Run(context.Background(), []Planned{p})
	res := rep.Steps[0]
	if len(res.Measurements) != 1 || res.Measurements[0].Name != "csq" || *res.Measurements[0].Value != 7 {
		t.Errorf("measurements = %+v", res.Measurements)
	}
	if rep.Reason != "CSQ 7 < 10" {
		t.Errorf("reason = %q", rep.Reason)
	}
	if len(op.prompts) != 1 || op.prompts[0] != "LTE: Check the antenna" {
		t.Errorf("prompts = %v", op.prompts)
	}
	if len(got) != 2 || got[0].Status != protocol.StatusRunning || got[1].Result == nil {
		t.Fatalf("events = %+v", got)
	}
	pe := got[1].Protocol()
	if pe.Kind != protocol.EventStep || pe.Step != "LTE" || pe.Status != protocol.StatusFail || len(pe.Measurements) != 1 {
		t.Errorf("protocol event = %+v", pe)
	}
}

func TestRunnerCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	first := sc(func(ctx context.Context) (checks.Outcome, error) {
		cancel()
		<-ctx.Done()
		return checks.Outcome{}, ctx.Err()
	})
	p := step("a", 3, false, first)
	p.Step.Timeout = checks.Duration(time.Minute)
	rep := (&Runner{}).Run(ctx, []Planned{p, step("b", 0, false, sc(pass("ok", 1)))})
	if rep.Steps[0].Status != protocol.StatusError || rep.Steps[0].Attempts != 1 || rep.Steps[1].Status != protocol.StatusSkipped || rep.Status != protocol.StatusFail {
		t.Errorf("report = %+v", rep)
	}
}
