package uinit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/cmdline"
	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/agent/netup"
)

func TestHint(t *testing.T) {
	_, urlErr := cmdline.ParseServerURL("ftp://x")
	_, clientErr := lineclient.New("10.0.0.1:8080", nil)
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"panic", &PanicError{Value: "boom"}, "bug in the agent"},
		{"wrapped panic", fmt.Errorf("journey: %w", &PanicError{Value: "boom"}), "bug in the agent"},
		{"bad --server", fmt.Errorf("--server: %w", urlErr), "flashline.server= must be"},
		{"bad URL at the client", clientErr, "flashline.server= must be"},
		{"network did not come up", fmt.Errorf("%w: %w", netup.ErrNoNetwork, context.Canceled), "check the cable"},
		{"network unreachable", fmt.Errorf("hello: %w", dialErr), "check the cable"},
		// Wording alone no longer decides: a message that merely says "network" is no network error.
		{"other", errors.New("scenario names network.foo"), "flashline.debug on the kernel command line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Hint(tt.err); !strings.Contains(got, tt.want) {
				t.Fatalf("Hint(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name      string
		owner     bool
		results   []error // what each journey returns, in turn
		panicAt   int     // 1-based run that panics; 0: none
		debug     bool
		wantCode  int
		wantRuns  int
		wantShell int
		wantIdle  bool
		console   []string
	}{
		{"host success", false, []error{nil}, 0, false, 0, 1, 0, false, nil},
		{"host failure ends", false, []error{errors.New("no job\nsecond line")}, 0, false, 1, 1, 0, false,
			[]string{"could not go on", "no job", "second line", "hint:"}},
		{"device retries until done", true, []error{errors.New("a"), errors.New("b"), nil}, 0, false, 0, 3, 0, true,
			[]string{"starting over in", "journey finished"}},
		{"device survives a panic", true, []error{nil, nil}, 1, false, 0, 2, 0, true, []string{"internal error: boom", "bug in the agent"}},
		{"debug opens the shell", true, []error{errors.New("a"), nil}, 0, true, 0, 2, 1, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			runs, shells, idle := 0, 0, false
			var slept []time.Duration
			code := Run(context.Background(), Options{
				Console: console.New(&out),
				Owner:   tt.owner,
				Once: func(context.Context) (bool, error) {
					runs++
					if runs == tt.panicAt {
						panic("boom")
					}
					return tt.debug, tt.results[runs-1]
				},
				Shell:   func(context.Context, *console.Console) { shells++ },
				Backoff: &lineclient.Backoff{Min: time.Second, Max: time.Second},
				Sleep:   func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil },
				Idle:    func() { idle = true },
			})
			if code != tt.wantCode || runs != tt.wantRuns || shells != tt.wantShell || idle != tt.wantIdle {
				t.Fatalf("code %d runs %d shells %d idle %v, want %d %d %d %v\n%s", code, runs, shells, idle,
					tt.wantCode, tt.wantRuns, tt.wantShell, tt.wantIdle, out.String())
			}
			if tt.owner && len(slept) != runs-1 {
				t.Errorf("slept %d times between %d runs", len(slept), runs)
			}
			for _, w := range tt.console {
				if !strings.Contains(out.String(), w) {
					t.Errorf("console lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestRunOwnerIgnoresCancel: signals must not end the device's only program.
func TestRunOwnerIgnoresCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	seen := 0
	Run(ctx, Options{Console: console.New(&out), Owner: true,
		Once: func(ctx context.Context) (bool, error) {
			seen++
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, nil
		},
		Idle: func() {},
	})
	if seen != 1 {
		t.Fatalf("journey ran %d times; a cancelled context reached it", seen)
	}
}

func TestLinger(t *testing.T) {
	tests := []struct {
		name     string
		arg0     string
		ppid     int
		code     int
		wantIdle bool
		wantOut  string
	}{
		{"host exits", "/usr/bin/flashline-agent", 4242, 1, false, ""},
		{"a test's /init runs the agent", "/bin/flashline-agent", 1, 0, false, ""},
		{"uinit named so by a non-init parent", "/bin/uinit", 300, 1, false, ""},
		{"u-root's uinit stays up after a failure", "/bin/uinit", 1, 1, true, "finished with exit status 1; staying up"},
		{"u-root's uinit stays up after a pass", "/bbin/uinit", 1, 0, true, "finished with exit status 0; staying up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			idle := false
			code := Linger(&out, StartedByURootInit(tt.arg0, tt.ppid), tt.code, func() { idle = true })
			if code != tt.code || idle != tt.wantIdle {
				t.Fatalf("code %d idle %v, want %d %v", code, idle, tt.code, tt.wantIdle)
			}
			if tt.wantOut == "" && out.Len() != 0 || !strings.Contains(out.String(), tt.wantOut) {
				t.Fatalf("output %q, want %q", out.String(), tt.wantOut)
			}
		})
	}
}
