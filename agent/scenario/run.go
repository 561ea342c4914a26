package scenario

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/protocol"
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
	// OnEvent, when set, is called synchronously for every Event.
	OnEvent func(Event)
	// Now is the clock (tests fix it); time.Now when nil.
	Now func() time.Time
	// Grace is how long past its timeout a check that ignores its context is waited for
	// before the runner abandons it; 2s when zero.
	Grace time.Duration
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
func (r *Runner) Run(ctx context.Context, plan []Planned) Report {
	rep := Report{Status: protocol.StatusPass}
	stopped := ""
	for i := range plan {
		p := &plan[i]
		var res protocol.StepResult
		switch {
		case stopped != "":
			res = protocol.StepResult{Name: p.Step.Name, Check: p.Step.Check, Status: protocol.StatusSkipped, Message: stopped, Started: r.now()}
		case p.Skip != "" || p.Check == nil:
			res = protocol.StepResult{Name: p.Step.Name, Check: p.Step.Check, Status: protocol.StatusSkipped, Message: p.Skip, Started: r.now()}
		default:
			res = r.runStep(ctx, i, len(plan), p)
		}
		r.emit(Event{Index: i, Total: len(plan), Step: &p.Step, Status: res.Status, Attempt: res.Attempts, Result: &res})
		rep.Steps = append(rep.Steps, res)
		if res.Status == protocol.StatusFail || res.Status == protocol.StatusError {
			if rep.Status == protocol.StatusPass {
				rep.Status = protocol.StatusFail
				rep.FailedStep = p.Step.Name
				rep.Reason = res.Message
			}
			if ctx.Err() != nil {
				stopped = "run cancelled"
			} else if !p.Step.ContinueOnFail && stopped == "" {
				stopped = fmt.Sprintf("not run: step %q failed", p.Step.Name)
			}
		}
	}
	return rep
}

func (r *Runner) runStep(ctx context.Context, idx, total int, p *Planned) protocol.StepResult {
	st := &p.Step
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
		r.emit(Event{Index: idx, Total: total, Step: st, Status: protocol.StatusRunning, Attempt: attempt, Message: prev})
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
