package kmod

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// mmcHost makes /sys/class/mmc_host/NAME with optional cards: type per card, and whether the
// card has its block device.
func mmcHost(t *testing.T, root, name string, cards map[string]bool, typ string) {
	t.Helper()
	h := filepath.Join(root, "sys", "class", "mmc_host", name)
	if err := os.MkdirAll(h, 0o755); err != nil {
		t.Fatal(err)
	}
	for c, block := range cards {
		d := filepath.Join(h, name+":"+c)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "type"), []byte(typ+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if block {
			if err := os.MkdirAll(filepath.Join(d, "block", "mmcblk0"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestWaitMMC(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(t *testing.T, root string)
		late        func(root string) // happens 100ms into the wait
		wantMissing []string
		wantWait    bool // waited at least until late happened
	}{
		{"no mmc class at all", func(*testing.T, string) {}, nil, nil, false},
		{"eMMC ready", func(t *testing.T, r string) { mmcHost(t, r, "mmc0", map[string]bool{"0001": true}, "MMC") }, nil, nil, false},
		{"SDIO Wi-Fi needs no block device", func(t *testing.T, r string) { mmcHost(t, r, "mmc1", map[string]bool{"0001": false}, "SDIO") }, nil, nil, false},
		{"card appears late", func(t *testing.T, r string) { mmcHost(t, r, "mmc0", nil, "") },
			func(r string) {
				os.MkdirAll(filepath.Join(r, "sys/class/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0"), 0o755)
				os.WriteFile(filepath.Join(r, "sys/class/mmc_host/mmc0/mmc0:aaaa/type"), []byte("SD\n"), 0o644)
			}, nil, true},
		{"block device appears late", func(t *testing.T, r string) { mmcHost(t, r, "mmc0", map[string]bool{"0001": false}, "MMC") },
			func(r string) {
				os.MkdirAll(filepath.Join(r, "sys/class/mmc_host/mmc0/mmc0:0001/block/mmcblk0"), 0o755)
			}, nil, true},
		{"empty SD slot beside the eMMC", func(t *testing.T, r string) {
			mmcHost(t, r, "mmc0", map[string]bool{"0001": true}, "MMC")
			mmcHost(t, r, "mmc1", nil, "")
		}, nil, []string{"mmc1"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			done := make(chan struct{})
			if tc.late != nil {
				time.AfterFunc(100*time.Millisecond, func() { tc.late(root); close(done) })
			} else {
				close(done)
			}
			waited, missing := WaitMMC(context.Background(), root, 400*time.Millisecond)
			<-done // the temporary tree goes when the test ends
			if !slices.Equal(missing, tc.wantMissing) {
				t.Fatalf("missing %v, want %v", missing, tc.wantMissing)
			}
			if tc.wantWait && waited < 100*time.Millisecond {
				t.Errorf("returned after %v, before the card was ready", waited)
			}
			if tc.wantMissing == nil && waited >= 400*time.Millisecond {
				t.Errorf("waited the whole timeout (%v) though every host was ready", waited)
			}
			if tc.wantMissing != nil && waited < 400*time.Millisecond {
				t.Errorf("gave up after %v, before the timeout", waited)
			}
		})
	}
}
