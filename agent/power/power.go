// Package power carries out a job's after-action on the device: reboot, power off or halt.
// Buffers are synced first so that nothing written by the flash can be lost to the reset.
package power

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/flashline/flashline/protocol"
)

// Syscalls is the kernel interface the actions need; tests use a fake.
type Syscalls interface {
	Sync()
	Reboot(cmd int) error
}

// Kernel is the real kernel.
type Kernel struct{}

// Sync flushes every filesystem and block device buffer.
func (Kernel) Sync() { unix.Sync() }

// Reboot resets, powers off or halts the machine; on success it does not return.
func (Kernel) Reboot(cmd int) error { return unix.Reboot(cmd) }

// Do carries out action (protocol.AfterReboot, AfterPoweroff, AfterHalt). AfterKexec is
// refused: booting the flashed firmware in place needs its kernel, which only the firmware's
// own boot loader knows how to find; reboot instead.
func Do(ctx context.Context, sys Syscalls, action string) error {
	var cmd int
	switch action {
	case protocol.AfterReboot, "":
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	case protocol.AfterPoweroff:
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	case protocol.AfterHalt:
		cmd = unix.LINUX_REBOOT_CMD_HALT
	case protocol.AfterNone:
		return nil
	default:
		return fmt.Errorf("after-action %q: not supported (use reboot, poweroff, halt or none)", action)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sys.Sync()
	if err := sys.Reboot(cmd); err != nil {
		return fmt.Errorf("after-action %s: %w", action, err)
	}
	return nil
}
