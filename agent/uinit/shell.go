package uinit

import (
	"context"
	"os"
	"os/exec"

	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/kmod"
	"github.com/flashline/flashline/agent/power"
	"github.com/flashline/flashline/agent/rescue"
	"github.com/flashline/flashline/protocol"
)

// shells are tried in order; u-root images have one of them unless built without a shell.
var shells = [...]string{"/bin/defaultsh", "/bin/sh", "/bbin/gosh", "/bin/gosh"}

// OperatorShell runs a shell on the console for the operator (flashline.debug), or the rescue
// console when the image has no shell; the journey starts over when it exits.
func OperatorShell(ctx context.Context, con *console.Console) {
	for _, sh := range shells {
		if _, err := os.Stat(sh); err != nil {
			continue
		}
		con.Infof("flashline.debug: shell %s on the console; exit it to start over", sh)
		cmd := exec.Command(sh)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			con.Warnf("shell: %v", err)
		}
		return
	}
	con.Infof("flashline.debug: rescue console; 'retry' starts over")
	act := rescue.Run(ctx, rescue.Env{Root: "/", Load: kmod.Load, Kmsg: rescue.Kmsg, Links: rescue.Links}, os.Stdin, os.Stdout)
	switch act {
	case rescue.Reboot:
		con.Infof("rebooting")
		if err := power.Do(ctx, power.Kernel{}, protocol.AfterReboot); err != nil {
			con.Failf("reboot: %v", err)
		}
	case rescue.Poweroff:
		con.Infof("powering off")
		if err := power.Do(ctx, power.Kernel{}, protocol.AfterPoweroff); err != nil {
			con.Failf("poweroff: %v", err)
		}
	}
}
