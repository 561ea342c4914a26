//go:build e2e

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/initramfs/diskimage"
	"github.com/flashline/flashline/testbed/qemu"
)

// TestFirmwareBoots builds the test firmware and boots it from a virtio disk with SeaBIOS and
// with OVMF: both must print the marker with the DMI serial QEMU was given.
func TestFirmwareBoots(t *testing.T) {
	kernel := defaultKernel()
	if _, err := os.Stat(kernel); err != nil {
		t.Skipf("no kernel for VMs (%v): run scripts/setup", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	out := t.TempDir()
	if err := run(ctx, kernel, out, 64<<20, diskimage.GPT, "console=ttyS0,115200 quiet no_timer_check", "", 8<<20); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(out, "firmware.img")
	const serial = "TESTSERIAL"
	want := "GM-SOFT-KIT BOOTED serial=" + serial
	for _, fw := range []qemu.Firmware{qemu.BIOS, qemu.UEFI} {
		t.Run(string(fw), func(t *testing.T) {
			res, err := qemu.Boot(ctx, qemu.BootConfig{Image: img, Firmware: fw, Attach: qemu.Virtio, Serial: serial},
				func(line string) bool { return strings.Contains(line, want) })
			if err != nil {
				if res != nil {
					t.Logf("console:\n%s", tail(res.Console, 3000))
				}
				t.Fatal(err)
			}
			t.Logf("%s: %q after %.1fs", fw, want, res.Elapsed.Seconds())
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
