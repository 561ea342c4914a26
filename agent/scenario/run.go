package scenario

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/protocol"
)

// Event reports a step's progress while a scenario runs.
type Event struct {
	Index int // of the step in the plan, from 0
	Total int // steps in the plan
	Step  *Step
	// Status is StatusRunning when an attempt starts (Attempt says which; Message the
	// previous attempt's failure on a retry), then the step's final status with Result.
	Status  protocol.Status
	Attempt int
	Message string
	Result  *protocol.StepResult
}

// Protocol returns the event as the wire's step event (Seq and Time are the caller's).
func (ev Event) Protocol() protocol.Event {
	pe := protocol.Event{Kind: protocol.EventStep, Step: ev.Step.Name, Status: ev.Status, Message: ev.Message}
	if ev.Result != nil {
		pe.Message = ev.Result.Message
		pe.Measurements = ev.Result.Measurements
	}
	return pe
}

// Report is the outcome of a whole scenario.
type Report struct {
	Steps []protocol.StepResult
	// Status is pass only when no step failed or erred.
	Status protocol.Status
	// FailedStep and Reason name the first failed step and why.
	FailedStep string
	Reason     string
}

// Runner runs planned steps.
type Runner struct {
	Inventory checks.InventorySource
	Operator  checks.Operator // may be nil
	Log       *slog.Logger    // may be nil
	// OnEvent, when set, is called synchronously for every Event, never for two at once
	// (steps of a parallel group report from their own goroutines).
	OnEvent func(Event)
	// Now is the clock (tests fix it); time.Now when nil.
	Now func() time.Time
	// Grace is how long past its timeout a check that ignores its context is waited for
	// before the runner abandons it; 2s when zero.
	Grace time.Duration
	// Network, when set, is held quiet while a step that times the network runs
	// (Step.NeedsQuietNetwork), from its first attempt to its last: a flash while testing
	// waits on it before reading more of the image.
	Network Quieter
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) emit(ev Event) {
	if r.OnEvent != nil {
		r.OnEvent(ev)
	}
}

// Run runs the plan in order. A failed step stops the run unless it has continue_on_fail;
// the steps not run are reported as skipped. Cancelling ctx stops the run the same way, with
// the running step reported as an error.
//
// The steps of a `parallel:` group (consecutive planned steps with the same Step.Group) run
// at once, each with its own timeout and retries. Steps that prompt the operator
// (Step.PromptsOperator) run one after another, in file order, beside the others, so that
// the operator never has two instructions at once. The first step of the group to fail
// without continue_on_fail ends the group: its siblings still running are cancelled and,
// like those not yet started, reported as skipped; the run then stops as after any failed
// step. Results are in plan order whatever order the steps finished in; events are emitted
// as they happen, never two at once.
func (r *Runner) Run(ctx context.Context, plan []Planned) Report {
	run := &running{r: r, total: len(plan)}
	rep := Report{Status: protocol.StatusPass}
	stopped := ""
	for i := 0; i < len(plan); {
		j := i + 1
		if g := plan[i].Step.Group; g != 0 {
			for j < len(plan) && plan[j].Step.Group == g {
				j++
			}
		}
		// firstFail is the plan index of the first step to fail (in time), stopper that of
		// the step whose failure stops the run; -1 for none.
		var results []protocol.StepResult
		firstFail, stopper := -1, -1
		switch {
		case stopped != "":
			for k := i; k < j; k++ {
				res := protocol.StepResult{Name: plan[k].Step.Name, Check: plan[k].Step.Check, Status: protocol.StatusSkipped, Message: stopped, Started: r.now()}
				run.emit(Event{Index: k, Total: len(plan), Step: &plan[k].Step, Status: res.Status, Result: &res})
				results = append(results, res)
			}
		case plan[i].Step.Group == 0:
			res := run.one(ctx, i, &plan[i])
			results = []protocol.StepResult{res}
			if failed(res.Status) {
				firstFail = i
				if !plan[i].Step.ContinueOnFail {
					stopper = i
				}
			}
		default:
			results, firstFail, stopper = run.group(ctx, plan, i, j)
		}
		rep.Steps = append(rep.Steps, results...)
		if firstFail >= 0 && rep.Status == protocol.StatusPass {
			rep.Status = protocol.StatusFail
			rep.FailedStep = plan[firstFail].Step.Name
			rep.Reason = results[firstFail-i].Message
		}
		if firstFail >= 0 && stopped == "" {
			if ctx.Err() != nil {
				stopped = "run cancelled"
			} else if stopper >= 0 {
				stopped = fmt.Sprintf("not run: step %q failed", plan[stopper].Step.Name)
			}
		}
		i = j
	}
	return rep
}

func failed(s protocol.Status) bool { return s == protocol.StatusFail || s == protocol.StatusError }

// running is one Run's shared state: events must not interleave when a group's steps
// report at once.
type running struct {
	r     *Runner
	total int
	mu    sync.Mutex
}

func (run *running) emit(ev Event) {
	run.mu.Lock()
	defer run.mu.Unlock()
	run.r.emit(ev)
}

// one runs or skips a single planned step and emits its final event.
func (run *running) one(ctx context.Context, idx int, p *Planned) protocol.StepResult {
	var res protocol.StepResult
	if p.Skip != "" || p.Check == nil {
		res = protocol.StepResult{Name: p.Step.Name, Check: p.Step.Check, Status: protocol.StatusSkipped, Message: p.Skip, Started: run.r.now()}
	} else {
		res = run.r.runStep(ctx, idx, run.total, p, run.emit)
	}
	run.emit(Event{Index: idx, Total: run.total, Step: &p.Step, Status: res.Status, Attempt: res.Attempts, Result: &res})
	return res
}

// group runs plan[from:to] at once and returns their results in plan order, the plan index
// of the first step to fail (in time) and that of the first to fail without
// continue_on_fail, which ended the group (-1 for none).
func (run *running) group(ctx context.Context, plan []Planned, from, to int) ([]protocol.StepResult, int, int) {
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]protocol.StepResult, to-from)
	var (
		mu                 sync.Mutex
		firstFail, stopper = -1, -1
		cause              string
	)
	// finish records a finished step; a failure that ends the group cancels its siblings.
	finish := func(k int, res protocol.StepResult) {
		mu.Lock()
		if cause != "" && ctx.Err() == nil && res.Status != protocol.StatusPass {
			// Ended by the sibling's failure, not by a fault of its own.
			res.Status, res.Message = protocol.StatusSkipped, cause
		}
		results[k-from] = res
		if failed(res.Status) && firstFail < 0 {
			firstFail = k
		}
		if failed(res.Status) && !plan[k].Step.ContinueOnFail && stopper < 0 {
			stopper = k
			cause = fmt.Sprintf("cancelled: step %q in the same parallel group failed", plan[k].Step.Name)
			cancel()
		}
		mu.Unlock()
		run.emit(Event{Index: k, Total: run.total, Step: &plan[k].Step, Status: res.Status, Attempt: res.Attempts, Result: &res})
	}
	runOne := func(k int) {
		p := &plan[k]
		if p.Skip != "" || p.Check == nil {
			finish(k, protocol.StepResult{Name: p.Step.Name, Check: p.Step.Check, Status: protocol.StatusSkipped, Message: p.Skip, Started: run.r.now()})
			return
		}
		if gctx.Err() != nil && ctx.Err() == nil {
			mu.Lock()
			why := cause
			mu.Unlock()
			finish(k, protocol.StepResult{Name: p.Step.Name, Check: p.Step.Check, Status: protocol.StatusSkipped, Message: why, Started: run.r.now()})
			return
		}
		finish(k, run.r.runStep(gctx, k, run.total, p, run.emit))
	}
	var wg sync.WaitGroup
	var prompting []int
	for k := from; k < to; k++ {
		if plan[k].Step.PromptsOperator() && plan[k].Skip == "" {
			prompting = append(prompting, k)
			continue
		}
		wg.Go(func() { runOne(k) })
	}
	wg.Go(func() {
		for _, k := range prompting {
			runOne(k)
		}
	})
	wg.Wait()
	return results, firstFail, stopper
}

func (r *Runner) runStep(ctx context.Context, idx, total int, p *Planned, emit func(Event)) protocol.StepResult {
	st := &p.Step
	if r.Network != nil && st.NeedsQuietNetwork() {
		defer r.Network.Quiet()()
	}
	res := protocol.StepResult{Name: st.Name, Check: st.Check, Started: r.now()}
	op := r.Operator
	if op == nil {
		op = checks.NopOperator{}
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	inv := r.Inventory
	if inv == nil {
		inv = checks.StaticInventory(protocol.Inventory{})
	}
	prev := ""
	for attempt := 1; attempt <= st.Retries+1; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(st.Delay())
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			res.Status, res.Message = protocol.StatusError, "run cancelled"
			break
		}
		res.Attempts = attempt
		emit(Event{Index: idx, Total: total, Step: st, Status: protocol.StatusRunning, Attempt: attempt, Message: prev})
		if st.Prompt != "" {
			op.Prompt(st.Name, st.Prompt)
		}
		env := &checks.Env{Inventory: inv, Operator: op, Log: log.With("step", st.Name, "attempt", attempt), Step: st.Name, Attempt: attempt}
		out, err := r.attempt(ctx, p.Check, env, st.AttemptTimeout())
		res.Measurements = out.Measurements
		switch {
		case err == nil && out.Pass:
			res.Status, res.Message = protocol.StatusPass, out.Reason
		case err == nil:
			res.Status, res.Message = protocol.StatusFail, out.Reason
		case errors.Is(err, errTimeout):
			res.Status, res.Message = protocol.StatusFail, fmt.Sprintf("timed out after %s", st.AttemptTimeout())
			if out.Reason != "" {
				res.Message += ": " + out.Reason
			}
		case ctx.Err() != nil:
			res.Status, res.Message = protocol.StatusError, "run cancelled"
		default:
			res.Status, res.Message = protocol.StatusError, err.Error()
		}
		if res.Status == protocol.StatusPass || ctx.Err() != nil {
			break
		}
		prev = res.Message
		log.Info("step attempt failed", "step", st.Name, "attempt", attempt, "reason", res.Message)
	}
	res.DurationMS = r.now().Sub(res.Started).Milliseconds()
	return res
}

var errTimeout = errors.New("step timed out")

// attempt runs one attempt under the step's timeout. A check that ignores its context is
// abandoned Grace after the timeout so that a stuck driver cannot hang the line.
func (r *Runner) attempt(ctx context.Context, c checks.Check, env *checks.Env, timeout time.Duration) (out checks.Outcome, err error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		out checks.Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			if p := recover(); p != nil {
				res = result{err: fmt.Errorf("check panicked: %v", p)}
			}
			done <- res
		}()
		res.out, res.err = c.Run(actx, env)
	}()
	grace := r.Grace
	if grace == 0 {
		grace = 2 * time.Second
	}
	var res result
	select {
	case res = <-done:
	case <-actx.Done():
		g := time.NewTimer(grace)
		defer g.Stop()
		select {
		case res = <-done:
		case <-g.C:
			res = result{err: actx.Err()}
		}
	}
	if res.err != nil && ctx.Err() == nil && actx.Err() == context.DeadlineExceeded {
		return res.out, errTimeout
	}
	if res.err == nil && !res.out.Pass && ctx.Err() == nil && actx.Err() == context.DeadlineExceeded && res.out.Reason == "" {
		return res.out, errTimeout
	}
	return res.out, res.err
}
