package journey

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flashline/flashline/agent/journey/internal/report"
	"github.com/flashline/flashline/protocol"
)

// A flash while testing (job.Flash.WhileTesting) starts with the scenario and writes all of
// the image but its first MiB (and the held-back last MiB) while the steps run; FlashRequest.
// Commit holds it there until the verdict. Every step passed: it commits and the device
// passes. A step failed: the download is stopped at once and the flash wipes the partition
// tables as any failed flash does, so the device netboots again and the result names the
// step. Steps that time the network hold Deps.Network quiet, and the download waits on it.

// earlyFlash is a flash running while the scenario does.
type earlyFlash struct {
	cancel  context.CancelFunc
	verdict chan error
	done    chan struct{}
	start   time.Time
	fr      protocol.FlashResult
	err     error
}

// errStepFailed is what a flash while testing is told when a step failed.
var errStepFailed = errors.New("a step failed")

func startEarlyFlash(ctx context.Context, env Env, api API, deps Deps, job protocol.Job, inv protocol.Inventory, rep *report.Reporter) *earlyFlash {
	fctx, cancel := context.WithCancel(ctx)
	ef := &earlyFlash{cancel: cancel, verdict: make(chan error, 1), done: make(chan struct{}), start: env.Now()}
	hooks := flashHooks{
		commit: func(ctx context.Context) error {
			env.Console.Infof("flash: image written, waiting for the tests before committing it")
			select {
			case err := <-ef.verdict:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}
	if deps.Network != nil {
		hooks.hold = deps.Network.Wait
	}
	env.Console.Infof("flash: while testing (committed only when every step passed)")
	rep.Emit(protocol.Event{Kind: protocol.EventPhase, Phase: "flash", Status: protocol.StatusRunning, Message: "while testing"})
	go func() {
		defer close(ef.done)
		ef.fr, ef.err = flash(fctx, env, api, deps, job, inv, rep, hooks)
	}()
	return ef
}

// finish gives the flash the scenario's verdict (nil: every step passed; otherwise the
// failed step) and waits for it to end. After a failed step the download is stopped and the
// target wiped; the flash's own error then only says so.
func (ef *earlyFlash) finish(env Env, failedStep string) (protocol.FlashResult, error) {
	defer ef.cancel()
	if failedStep != "" {
		// Cancelled first, so that a flash still downloading stops now rather than at its
		// commit, and flash() knows not to report the stop as a failure of its own.
		ef.cancel()
		ef.verdict <- fmt.Errorf("%w: %q", errStepFailed, failedStep)
	} else {
		ef.verdict <- nil
	}
	<-ef.done
	if failedStep != "" {
		if ef.err != nil {
			env.Console.Infof("flash: stopped and wiped (step %q failed): the device netboots again", failedStep)
		} else {
			// Only a flash that ignores its Commit hook gets here.
			env.Console.Warnf("flash: committed although step %q failed", failedStep)
		}
	}
	return ef.fr, ef.err
}
