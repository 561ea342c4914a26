// Command qemu-boot-media boots a Flashline disk image or ISO in QEMU the way a machine
// without PXE would, with the serial console on stdout: for trying media by hand, through the
// same harness (testbed/qemu.Boot) and the same machine-wide lock as the tests.
//
//	go run ./testbed/qemu-boot-media IMAGE [bios|uefi] [usb|cdrom|virtio] [extra qemu args...]
//
// The image is attached with snapshot=on (never modified). TIMEOUT (seconds, default 300)
// bounds the run; SERIAL sets the DMI serial (default TESTSERIAL).
package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/flashline/flashline/testbed/qemu"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "qemu-boot-media:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: qemu-boot-media IMAGE [bios|uefi] [usb|cdrom|virtio] [qemu args...]")
	}
	cfg := qemu.BootConfig{Image: args[0], Firmware: qemu.BIOS, Attach: qemu.USB, Log: os.Stdout,
		Serial: cmp.Or(os.Getenv("SERIAL"), "TESTSERIAL")}
	if len(args) > 1 {
		switch fw := qemu.Firmware(args[1]); fw {
		case qemu.BIOS, qemu.UEFI:
			cfg.Firmware = fw
		default:
			return fmt.Errorf("firmware must be bios or uefi, not %q", args[1])
		}
	}
	if len(args) > 2 {
		switch a := qemu.Attach(args[2]); a {
		case qemu.USB, qemu.CDROM, qemu.Virtio:
			cfg.Attach = a
		default:
			return fmt.Errorf("attachment must be usb, cdrom or virtio, not %q", args[2])
		}
	}
	if len(args) > 3 {
		// Extra arguments bring their own network (as the shell version did).
		cfg.Net = args[3:]
	}
	secs := 300
	if v := os.Getenv("TIMEOUT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("TIMEOUT=%q: want a number of seconds", v)
		}
		secs = n
	}
	cfg.Timeout = time.Duration(secs) * time.Second
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// Watch until the guest stops by itself (poweroff) or the timeout.
	_, err := qemu.Boot(ctx, cfg, func(string) bool { return false })
	return err
}
