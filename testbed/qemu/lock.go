package qemu

import (
	"context"
	"sync"
)

// Lock takes the machine-wide QEMU lock at path (LockPath unless a test uses a private one),
// waiting as long as ctx allows, and returns the function that releases it. who names the
// holder in the lock file for whoever waits next; onWait, when set, is told who holds it
// when the lock is busy. Every guest of the project runs under it: Start and Boot take it
// for the guest's life, a whole-journey caller (two boots of one device) for longer.
func Lock(ctx context.Context, path, who string, onWait func(holder string)) (unlock func(), err error) {
	f, err := acquireLock(ctx, path, who, onWait)
	if err != nil {
		return nil, err
	}
	return sync.OnceFunc(func() { releaseLock(f) }), nil
}
