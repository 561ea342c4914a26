package power

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

type fakeSys struct {
	synced bool
	cmd    int
	calls  int
}

func (f *fakeSys) Sync() { f.synced = true }
func (f *fakeSys) Reboot(cmd int) error {
	if !f.synced {
		panic("reboot before sync")
	}
	f.cmd, f.calls = cmd, f.calls+1
	return nil
}

func TestDo(t *testing.T) {
	tests := []struct {
		action  string
		cmd     int
		calls   int
		wantErr bool
	}{
		{"reboot", unix.LINUX_REBOOT_CMD_RESTART, 1, false},
		{"", unix.LINUX_REBOOT_CMD_RESTART, 1, false},
		{"poweroff", unix.LINUX_REBOOT_CMD_POWER_OFF, 1, false},
		{"halt", unix.LINUX_REBOOT_CMD_HALT, 1, false},
		{"none", 0, 0, false},
		{"kexec", 0, 0, true},
		{"explode", 0, 0, true},
	}
	for _, tt := range tests {
		f := &fakeSys{}
		err := Do(context.Background(), f, tt.action)
		if (err != nil) != tt.wantErr || f.calls != tt.calls || f.cmd != tt.cmd {
			t.Errorf("Do(%q) = %v, calls %d cmd %#x; want err=%v calls %d cmd %#x", tt.action, err, f.calls, f.cmd, tt.wantErr, tt.calls, tt.cmd)
		}
	}
}
