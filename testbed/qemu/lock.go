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

// Hold is one hold of a QEMU lock under which a test runs several guests at once (two devices
// of a line sharing an image, say): Start with Options.Hold takes no lock of its own, the
// guests run under this one. Single-guest callers never need it; the lock is still taken
// exactly once for the whole group, so no other guest of the machine runs beside them.
type Hold struct {
	mu       sync.Mutex
	unlock   func()
	released bool
}

// HoldLock takes the lock at path (LockPath when empty) for a group of guests, waiting as
// long as ctx allows. Release it once the group's guests have exited.
func HoldLock(ctx context.Context, path, who string, onWait func(holder string)) (*Hold, error) {
	if path == "" {
		path = LockPath
	}
	unlock, err := Lock(ctx, path, who, onWait)
	if err != nil {
		return nil, err
	}
	return &Hold{unlock: unlock}, nil
}

// Release gives the lock up. Guests started under the hold and still running are not
// stopped; the caller kills them first (Start refuses new ones from now on).
func (h *Hold) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.released {
		h.released = true
		h.unlock()
	}
}

// held reports whether the hold is still in force.
func (h *Hold) held() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.released
}
