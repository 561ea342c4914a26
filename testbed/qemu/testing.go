package qemu

import (
	"context"
	"os"
	"testing"
	"time"
)

// StartT starts a guest for a test and stops it when the test ends. The console log is
// removed after a passing test (unless $FLASHLINE_KEEP_LOGS is set) and kept, with its path
// printed, after a failing one.
func StartT(t testing.TB, opts Options) *VM {
	t.Helper()
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	if opts.LockWait == nil {
		opts.LockWait = func(holder string) { t.Logf("waiting for the QEMU lock: %s", holder) }
	}
	ctx := context.Background()
	if dl, ok := t.(interface {
		Deadline() (deadline time.Time, ok bool)
	}); ok {
		if d, ok := dl.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d)
			t.Cleanup(cancel)
		}
	}
	vm, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start QEMU: %v", err)
	}
	t.Logf("QEMU %s started; console log %s", opts.Mode, vm.LogPath())
	t.Cleanup(func() {
		_ = vm.Kill()
		if t.Failed() || os.Getenv("FLASHLINE_KEEP_LOGS") != "" {
			t.Logf("console log kept: %s", vm.LogPath())
			return
		}
		os.Remove(vm.LogPath())
	})
	return vm
}
