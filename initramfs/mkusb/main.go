// Command mkusb builds Flashline's PXE-less discovery media: a raw disk image for a USB stick
// and/or a hybrid ISO, each booting the agent's kernel and initrd on BIOS and UEFI machines.
// The agent then finds the line server as a netbooted one would, from flashline.server on
// the command line, or, when none is given, by DHCP options or a DNS/mDNS name
// (flashline.discover). The media are marked with flashline.bootmedia so the agent never
// picks the stick it booted from as a flash target.
//
//	go run ./initramfs/mkusb -usb out/flashline-usb.img -server http://10.0.0.1:8080
//	go run ./initramfs/mkusb -iso out/flashline.iso -discover dns:flashline-server.local
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/flashline/flashline/initramfs/diskimage"
	"github.com/flashline/flashline/initramfs/diskimage/publish"
)

type options struct {
	kernel, initrd   string
	usb, iso         string
	server, discover string
	console, extra   string
	size             int64
	table            string
	isoEFI, uki      string
	compress         bool
}

func main() {
	var o options
	flag.StringVar(&o.kernel, "kernel", defaultKernel(), "kernel image")
	flag.StringVar(&o.initrd, "initrd", envOr("FLASHLINE_INITRD", "initrd.gz"), "the agent's initramfs")
	flag.StringVar(&o.usb, "usb", "", "write a raw USB stick image to this file")
	flag.StringVar(&o.iso, "iso", "", "write a hybrid ISO to this file")
	flag.StringVar(&o.server, "server", "", "line server URL (flashline.server); empty: discover it")
	flag.StringVar(&o.discover, "discover", "", "how to find the server without -server (flashline.discover), e.g. dhcp or dns:flashline-server.local")
	flag.StringVar(&o.console, "console", "console=ttyS0,115200 console=tty0", "console parameters (the last is /dev/console)")
	flag.StringVar(&o.extra, "append", "", "more kernel parameters")
	flag.Int64Var(&o.size, "size", 0, "USB image size in bytes (0: fit the contents)")
	flag.StringVar(&o.table, "table", "mbr", "USB image partition table: mbr or gpt")
	flag.StringVar(&o.isoEFI, "iso-efi", "", "the ISO's UEFI loader: uki (boots from CDs too; default when systemd's stub is installed) or syslinux")
	flag.StringVar(&o.uki, "uki", "", "a ready (signed) unified kernel image to boot on UEFI instead of syslinux.efi, e.g. flashline.efi from make uki")
	flag.BoolVar(&o.compress, "compress", false, "also publish .zst, .xz, .sha256 and .json next to each image")
	flag.Parse()
	if o.usb == "" && o.iso == "" {
		fmt.Fprintln(os.Stderr, "mkusb: give -usb FILE and/or -iso FILE")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "mkusb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	cmdline, err := kernelCmdline(o.console, o.server, o.discover, o.extra)
	if err != nil {
		return err
	}
	boot := diskimage.Boot{
		Kernel:    o.kernel,
		Initrd:    o.initrd,
		Cmdline:   cmdline,
		Label:     "FLASHLINE",
		MarkMedia: true,
		UKI:       o.uki,
		Files:     []diskimage.File{{Path: "/README.txt", Data: []byte(readme)}},
	}
	var results []*diskimage.Result
	if o.usb != "" {
		if err := os.MkdirAll(filepath.Dir(o.usb), 0o755); err != nil {
			return err
		}
		r, err := diskimage.WriteDisk(ctx, o.usb, boot, diskimage.DiskOptions{Size: o.size, Table: diskimage.Table(o.table)})
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if o.iso != "" {
		if err := os.MkdirAll(filepath.Dir(o.iso), 0o755); err != nil {
			return err
		}
		r, err := diskimage.WriteISO(ctx, o.iso, boot, diskimage.ISOOptions{EFI: diskimage.EFILoader(o.isoEFI)})
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	for _, r := range results {
		slog.Info("wrote", "image", r.Path, "size", r.Size, "disk_id", r.DiskID, "cmdline", r.Cmdline)
		if o.compress {
			if _, err := publish.Publish(ctx, r.Path, publish.Options{Contents: r.Files, DiskID: r.DiskID}); err != nil {
				return err
			}
		}
	}
	return nil
}

// kernelCmdline assembles the agent's parameters. There is deliberately no BOOTIF: the agent
// then brings up whichever NIC has a carrier.
func kernelCmdline(console, server, discover, extra string) (string, error) {
	parts := strings.Fields(console)
	if server != "" {
		u, err := url.Parse(server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("server %q: want an http(s) URL", server)
		}
		if strings.ContainsAny(server, " \t\n\"") {
			return "", fmt.Errorf("server %q: no spaces or quotes allowed on a kernel command line", server)
		}
		parts = append(parts, "flashline.server="+server)
	}
	if discover != "" {
		if strings.ContainsAny(discover, " \t\n\"") {
			return "", fmt.Errorf("discover %q: no spaces or quotes allowed", discover)
		}
		parts = append(parts, "flashline.discover="+discover)
	}
	parts = append(parts, strings.Fields(extra)...)
	return strings.Join(parts, " "), nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func defaultKernel() string {
	if k := os.Getenv("FLASHLINE_KERNEL"); k != "" {
		return k
	}
	m, _ := filepath.Glob("/var/cache/flashline/kernel/boot/vmlinuz-*")
	if len(m) > 0 {
		return m[len(m)-1]
	}
	return "/boot/vmlinuz"
}

const readme = `Flashline discovery medium
==========================

This stick boots the Flashline agent on devices that cannot PXE-boot (BIOS and UEFI).
The agent brings up the first network interface with a link, finds the line server and
runs the device's job exactly as after a network boot. It never flashes this stick.

The kernel command line is in /boot/syslinux/syslinux.cfg (BIOS) and
/EFI/BOOT/syslinux.cfg (UEFI); edit flashline.server=... in both to point the stick at
another line server. Documentation: docs/boot-media.md in the Flashline sources.
`
