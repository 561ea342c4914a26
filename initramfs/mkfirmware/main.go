// Command mkfirmware builds Flashline's test firmware: a small raw disk image (GPT, one FAT
// EFI System partition that is also legacy-BIOS bootable) holding Debian's kernel and a tiny
// initramfs whose /init is cmds/gm-soft-kit, which prints
// "GM-SOFT-KIT BOOTED serial=<DMI serial>" on the serial console. The journey test flashes it
// and boots the device from disk to prove the new firmware runs. It writes, into -o:
//
//	firmware.img         the raw image
//	firmware.img.zst     zstd
//	firmware.img.xz      multi-block xz (block sizes in the headers, as `xz -T2` writes)
//	firmware.img.sha256  sha256sum format, of the raw image
//	firmware.img.json    manifest: size, sha256, published files, contents
//	gm-soft-kit.initrd.gz  the initramfs alone (handy for -kernel/-initrd tests)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/flashline/flashline/initramfs/diskimage"
	"github.com/flashline/flashline/initramfs/diskimage/publish"
)

func main() {
	kernel := flag.String("kernel", defaultKernel(), "kernel image (bzImage, EFI stub)")
	out := flag.String("o", "out/firmware", "output directory")
	size := flag.Int64("size", 64<<20, "image size in bytes")
	table := flag.String("table", "gpt", "partition table: gpt or mbr")
	cmdline := flag.String("append", "console=ttyS0,115200 quiet no_timer_check", "kernel command line (no_timer_check: the test firmware runs under TCG, whose timer the IO-APIC check can miss under load)")
	diskID := flag.String("disk-id", "", "partition table id (GUID for gpt, 8 hex digits for mbr); default random")
	xzBlock := flag.Int("xz-block-size", 8<<20, "xz block size in bytes")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *kernel, *out, *size, diskimage.Table(*table), *cmdline, *diskID, *xzBlock); err != nil {
		fmt.Fprintln(os.Stderr, "mkfirmware:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kernel, out string, size int64, table diskimage.Table, cmdline, diskID string, xzBlock int) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	initrd := filepath.Join(out, "gm-soft-kit.initrd.gz")
	if err := buildInitrd(ctx, initrd); err != nil {
		return err
	}
	img := filepath.Join(out, "firmware.img")
	res, err := diskimage.WriteDisk(ctx, img, diskimage.Boot{
		Kernel:  kernel,
		Initrd:  initrd,
		Cmdline: cmdline,
		Label:   "GMSOFTKIT",
		DiskID:  diskID,
	}, diskimage.DiskOptions{Size: size, Table: table})
	if err != nil {
		return err
	}
	m, err := publish.Publish(ctx, img, publish.Options{XZBlockSize: xzBlock, Contents: res.Files, DiskID: res.DiskID})
	if err != nil {
		return err
	}
	for _, f := range m.Files {
		slog.Info("wrote", "file", filepath.Join(out, f.Name), "size", f.Size, "sha256", f.SHA256)
	}
	return nil
}

// defaultKernel is the kernel scripts/setup unpacks, as the Makefile and the QEMU harness use.
func defaultKernel() string {
	if k := os.Getenv("FLASHLINE_KERNEL"); k != "" {
		return k
	}
	m, _ := filepath.Glob("/var/cache/flashline/kernel/boot/vmlinuz-*")
	if len(m) > 0 {
		return m[len(m)-1]
	}
	return strings.TrimSpace("/boot/vmlinuz")
}
