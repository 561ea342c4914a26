//go:build e2e

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/testbed/qemu"
)

// TestMediaBoot builds the USB image and the hybrid ISO around the test firmware's tiny
// initramfs (gm-soft-kit prints a marker and powers off) and boots each one as a USB stick,
// with SeaBIOS and with OVMF, and the ISO also as a CD with SeaBIOS. The guest has no NIC
// and so no PXE ROM: the medium is the only way in. The marker shows the kernel booted from
// the medium with the loader's command line.
func TestMediaBoot(t *testing.T) {
	kernel := defaultKernel()
	if _, err := os.Stat(kernel); err != nil {
		t.Skipf("no kernel for VMs (%v): run scripts/setup", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	dir := t.TempDir()
	fw := filepath.Join(dir, "fw")
	if out, err := exec.CommandContext(ctx, "go", "run", "github.com/flashline/flashline/initramfs/mkfirmware", "-o", fw).CombinedOutput(); err != nil {
		t.Fatalf("mkfirmware: %v: %s", err, out)
	}
	o := options{
		kernel:  kernel,
		initrd:  filepath.Join(fw, "gm-soft-kit.initrd.gz"),
		usb:     filepath.Join(dir, "flashline-usb.img"),
		iso:     filepath.Join(dir, "flashline.iso"),
		server:  "http://10.0.2.2:8080",
		console: "console=ttyS0,115200",
		table:   "mbr",
	}
	if err := run(ctx, o); err != nil {
		t.Fatal(err)
	}
	const serial = "USBSERIAL"
	want := "GM-SOFT-KIT BOOTED serial=" + serial
	for _, tc := range []struct {
		image  string
		fw     qemu.Firmware
		attach qemu.Attach
	}{
		{o.usb, qemu.BIOS, qemu.USB},
		{o.usb, qemu.UEFI, qemu.USB},
		{o.iso, qemu.BIOS, qemu.USB},
		{o.iso, qemu.UEFI, qemu.USB},
		{o.iso, qemu.BIOS, qemu.CDROM},
		// UEFI from a CD works with the unified kernel image (default when systemd's stub is
		// installed), not with syslinux.efi.
		{o.iso, qemu.UEFI, qemu.CDROM},
	} {
		name := filepath.Base(tc.image) + "/" + string(tc.fw) + "/" + string(tc.attach)
		t.Run(name, func(t *testing.T) {
			res, err := qemu.Boot(ctx, qemu.BootConfig{Image: tc.image, Firmware: tc.fw, Attach: tc.attach, Serial: serial},
				func(line string) bool { return strings.Contains(line, want) })
			if err != nil {
				if res != nil {
					t.Logf("console:\n%s", tail(res.Console, 3000))
				}
				t.Fatal(err)
			}
			t.Logf("%s: marker after %.1fs", name, res.Elapsed.Seconds())
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
