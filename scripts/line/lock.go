package line

import (
	"context"
	"path/filepath"

	"github.com/flashline/flashline/testbed/qemu"
)

// holdMachine takes the machine-wide QEMU lock for a whole journey (both boots of the device),
// so that no other guest slips in between the power cycle, and points the device's boots at a
// private lock instead. It returns the function that releases it.
func holdMachine(ctx context.Context, d *Device) (func(), error) {
	unlock, err := qemu.Lock(ctx, qemu.LockPath, "line journey of "+d.Serial, nil)
	if err != nil {
		return nil, err
	}
	prev := d.LockPath
	d.LockPath = filepath.Join(d.LogDir, "qemu-private.lock")
	return func() {
		d.LockPath = prev
		unlock()
	}, nil
}
