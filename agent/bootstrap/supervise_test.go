package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/console"
)

type doubling struct{ n, resets int }

func (d *doubling) Next() time.Duration {
	w := 5 * time.Second << d.n
	if w > 40*time.Second {
		return 40 * time.Second
	}
	d.n++
	return w
}
func (d *doubling) Reset() { d.n = 0; d.resets++ }

func TestSupervisorRestarts(t *testing.T) {
	var out bytes.Buffer
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Runs: crash quickly three times, then run for an hour (healthy), then crash again.
	durations := []time.Duration{time.Second, time.Second, time.Second, time.Hour, time.Second}
	runs := 0
	var waits []time.Duration
	b := &doubling{}
	s := Supervisor{
		Run: func(ctx context.Context) error {
			clock = clock.Add(durations[runs])
			runs++
			return errors.New("exit status 2")
		},
		Backoff: b,
		Sleep: func(ctx context.Context, d time.Duration) error {
			waits = append(waits, d)
			if len(waits) == len(durations) {
				cancel()
				return ctx.Err()
			}
			return nil
		},
		Console: console.New(&out),
		Now:     func() time.Time { return clock },
	}
	if err := s.Loop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Loop = %v", err)
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 5 * time.Second, 10 * time.Second}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v (a healthy run resets the backoff)", waits, want)
		}
	}
	if runs != 5 || b.resets != 1 {
		t.Errorf("runs %d, resets %d", runs, b.resets)
	}
	if !strings.Contains(out.String(), "FAIL flashline-agent stopped unexpectedly (exit status 2)") || !strings.Contains(out.String(), "starting over in 5s") {
		t.Errorf("console:\n%s", out.String())
	}
}

type fixedBackoff time.Duration

func (f fixedBackoff) Next() time.Duration { return time.Duration(f) }

// TestWaitForServer: a device without any server keeps looking, and says so each time.
func TestWaitForServer(t *testing.T) {
	var out bytes.Buffer
	con := console.New(&out)
	calls := 0
	u, err := waitForServer(context.Background(), con, fixedBackoff(time.Millisecond), func(context.Context) string {
		if calls++; calls < 3 {
			return ""
		}
		return "http://10.77.0.1:8080"
	})
	if err != nil || u != "http://10.77.0.1:8080" || calls != 3 {
		t.Fatalf("waitForServer = %q, %v after %d calls", u, err, calls)
	}
	if n := strings.Count(out.String(), "NO LINE SERVER FOUND"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, out.String())
	}
	if strings.Contains(out.String(), "10.0.2.2") {
		t.Errorf("mentions QEMU's address:\n%s", out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := waitForServer(ctx, con, fixedBackoff(10*time.Millisecond), func(context.Context) string { return "" }); err == nil {
		t.Error("no error when the context ended")
	}
}
