package rescue

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	os.MkdirAll(filepath.Join(root, "lib/modules"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/modules"), []byte("virtio_net 73728 0 - Live 0x0\nfailover 16384 1 net_failover, Live 0x0\n"), 0o644)
	os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte("console=ttyS0 flashline.debug\n"), 0o644)
	var loaded []string
	env := Env{
		Root: root,
		Load: func(ctx context.Context, names ...string) error {
			if names[0] == "bad" {
				return errors.New("could not find module")
			}
			loaded = append(loaded, names...)
			return nil
		},
		Kmsg:  func() (string, error) { return "one\ntwo\nthree\n", nil },
		Links: func() (string, error) { return "2: eth0 up 52:54:00:12:34:56\n", nil },
	}
	tests := []struct {
		input  string
		want   Action
		output []string
	}{
		{"help\nreboot\n", Reboot, []string{"modprobe NAME...", "poweroff"}},
		{"lsmod\ncmdline\nls /\nretry\n", Retry, []string{"virtio_net", "73728", "net_failover", "flashline.debug", "lib/", "proc/"}},
		{"dmesg 2\nip\npoweroff\n", Poweroff, []string{"two\nthree\n", "eth0 up"}},
		{"modprobe mac80211_hwsim\nmodprobe bad\nfrobnicate\ncat /nope\n", Retry, []string{"loaded mac80211_hwsim", "modprobe: could not find module", "frobnicate: unknown command", "cat: open"}},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		got := Run(context.Background(), env, strings.NewReader(tt.input), &out)
		if got != tt.want {
			t.Errorf("%q: action %v, want %v", tt.input, got, tt.want)
		}
		for _, w := range tt.output {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%q: output lacks %q:\n%s", tt.input, w, out.String())
			}
		}
	}
	if len(loaded) != 1 || loaded[0] != "mac80211_hwsim" {
		t.Errorf("loaded %q", loaded)
	}
}
