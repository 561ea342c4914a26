package line

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/flashline/flashline/testbed/qemu"
)

// holdMachine takes the machine-wide QEMU lock for a whole journey (both boots of the device),
// so that no other guest slips in between the power cycle, and points the device's boots at a
// private lock instead. It returns the function that releases it.
func holdMachine(ctx context.Context, d *Device) (func(), error) {
	f, err := os.OpenFile(qemu.LockPath, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("QEMU lock: %w", err)
	}
	got := make(chan error, 1)
	go func() { got <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("QEMU lock: %w", err)
		}
	case <-ctx.Done():
		// Closing the file ends the pending flock (or drops the lock it just got).
		f.Close()
		return nil, ctx.Err()
	}
	_ = f.Truncate(0)
	_, _ = f.WriteString(fmt.Sprintf("line journey of %s (pid %d)\n", d.Serial, os.Getpid()))
	prev := d.LockPath
	d.LockPath = filepath.Join(d.LogDir, "qemu-private.lock")
	return func() {
		d.LockPath = prev
		f.Close()
	}, nil
}
