package bootstrap

import (
	"context"
	"fmt"
	"time"

	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/lineclient"
)

// Supervisor keeps the agent alive on a device: it runs the journey (normally a child process
// of the agent itself) and starts it over whenever it ends, because the uinit must never exit
// (u-root's init would then panic the kernel and leave a dead screen on the line).
type Supervisor struct {
	// Run runs the journey once and returns how it ended (an exit status, a crash).
	Run func(ctx context.Context) error
	// Backoff spaces the restarts of a journey that keeps failing.
	Backoff Backoff
	// Sleep waits; nil means time.Sleep honouring ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Healthy is how long a run must last for the backoff to start over; zero means 10m.
	Healthy time.Duration
	Console *console.Console
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Backoff yields the delays between restarts (lineclient.Backoff fits).
type Backoff interface {
	Next() time.Duration
	Reset()
}

// Loop runs and restarts the journey until ctx ends (never, on a device).
func (s Supervisor) Loop(ctx context.Context) error {
	sleep, now, healthy := s.Sleep, s.Now, s.Healthy
	if sleep == nil {
		sleep = lineclient.Sleep
	}
	if now == nil {
		now = time.Now
	}
	if healthy == 0 {
		healthy = 10 * time.Minute
	}
	for {
		start := now()
		err := s.Run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if now().Sub(start) >= healthy {
			s.Backoff.Reset()
		}
		wait := s.Backoff.Next()
		s.Console.Banner(console.Fail, fmt.Sprintf("flashline-agent stopped unexpectedly (%v)", err),
			"this is a bug in the agent: the lines above show where; starting over")
		s.Console.Infof("starting over in %s", wait.Round(time.Second))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}
