// Package uinit is the agent as a device's only program. As u-root's uinit it must never
// return (u-root's init would power off or drop to a shell, leaving the operator a dead
// screen), so Run starts the journey over after every failure, shows each failure with a hint
// the operator can act on, and, with flashline.debug, opens an operator shell first. Supervise
// runs the journey in a child process so that even a panic on another goroutine only ends the
// child.
package uinit

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/lineclient"
)

// Options wire the loop to the journey and to the machine.
type Options struct {
	Console *console.Console
	// Once runs the journey once (boot, then the line server's job). debug reports that
	// flashline.debug was set, so that a failure opens the operator shell.
	Once func(ctx context.Context) (debug bool, err error)
	// Owner: this process is the device's only program (the uinit, or the child Supervise
	// started). It never returns: signals are ignored, failures are retried, and a journey
	// that ends without resetting the machine leaves the final screen on. Off a device
	// (flashline-agent run on a host) a failure returns 1 instead.
	Owner bool
	// Shell is the operator shell of flashline.debug; nil means OperatorShell.
	Shell func(ctx context.Context, con *console.Console)
	// Backoff spaces the retries; nil means 5 s doubling to a minute.
	Backoff *lineclient.Backoff
	// Sleep waits between retries; nil means lineclient.Sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Idle is what an Owner does once the journey has finished without a reset; nil means
	// sleeping forever. Returning from it ends Run with 0 (tests).
	Idle func()
}

// Run runs the journey until it succeeds and returns the exit status: 0 when the journey
// finished, 1 when it failed off a device or was stopped. An Owner returns only through Idle.
func Run(ctx context.Context, o Options) int {
	if o.Owner {
		// Signals must not end the device's only program.
		ctx = context.WithoutCancel(ctx)
	}
	if o.Shell == nil {
		o.Shell = OperatorShell
	}
	if o.Backoff == nil {
		o.Backoff = &lineclient.Backoff{Min: 5 * time.Second, Max: time.Minute}
	}
	if o.Sleep == nil {
		o.Sleep = lineclient.Sleep
	}
	if o.Idle == nil {
		o.Idle = func() {
			for {
				time.Sleep(time.Hour)
			}
		}
	}
	con := o.Console
	for {
		dbg, err := once(ctx, o.Once)
		if err == nil {
			if o.Owner {
				// Exiting would make u-root's init panic the kernel: stay with the final
				// screen on.
				con.Infof("journey finished: the device can be switched off")
				o.Idle()
			}
			return 0
		}
		if !o.Owner && ctx.Err() != nil {
			con.Failf("stopped: %v", err)
			return 1
		}
		first, rest, _ := strings.Cut(err.Error(), "\n")
		con.Banner(console.Fail, "flashline-agent could not go on:", first, Hint(err))
		if rest != "" {
			con.Failf("%s", rest)
		}
		if !o.Owner {
			return 1
		}
		if dbg {
			o.Shell(ctx, con)
		}
		wait := o.Backoff.Next()
		con.Infof("starting over in %s", wait.Round(time.Second))
		_ = o.Sleep(ctx, wait)
	}
}

// PanicError is a panic of the journey, caught so that the loop can show it and start over.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("internal error: %v\n%s", e.Value, e.Stack) }

// once runs f, turning a panic on this goroutine into a *PanicError.
func once(ctx context.Context, f func(context.Context) (bool, error)) (dbg bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return f(ctx)
}
