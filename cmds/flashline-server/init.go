package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/linehost"
)

// serviceUser is the user of the packaged systemd unit.
const serviceUser = "flashline"

// cmdInit lays out a line host (server/linehost) and then checks what it wrote.
func cmdInit(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	var o linehost.Options
	fs.StringVar(&o.ConfigDir, "config-dir", "/etc/flashline", "where server.yaml and keys/ go")
	fs.StringVar(&o.SrvDir, "srv-dir", "/srv/flashline", "where tftp/, images/ and scenarios/ go")
	fs.StringVar(&o.DataDir, "data-dir", "/var/lib/flashline", "data_dir written into server.yaml (created by the server)")
	fs.StringVar(&o.Kernel, "kernel", "", "kernel to copy into the TFTP root as vmlinuz (e.g. /var/cache/flashline/kernel/boot/vmlinuz-*)")
	fs.StringVar(&o.Initrd, "initrd", "", "the agent's initramfs (make initrd.gz) to copy into the TFTP root as initrd.gz")
	fs.StringVar(&o.Mode, "mode", "proxy", "DHCP mode: proxy (beside the plant's DHCP server) or full (this host hands out addresses)")
	fs.StringVar(&o.Interface, "interface", "", "the line network's interface (default: the only one with an IPv4 address besides the default route's)")
	fs.BoolVar(&o.Force, "force", false, "replace files whose content would change (never the signing key)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flashline-server init [-mode proxy|full] [-interface IF] [-kernel FILE] [-initrd FILE] [-force]\n\nLays out a line host: TFTP root with the syslinux boot files of the installed pxelinux,\nsyslinux-common and syslinux-efi packages, kernel and initrd, the operator's signing key and\na commented server.yaml for this host. Running it again changes nothing.")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "flashline-server init: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if o.Mode != "proxy" && o.Mode != "full" {
		fmt.Fprintf(os.Stderr, "flashline-server init: -mode %q: want proxy or full\n", o.Mode)
		return 2
	}
	if os.Geteuid() == 0 {
		// Installed from the package, the server runs as the flashline user.
		if u, err := user.Lookup(serviceUser); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			o.KeyOwner = &[2]int{uid, gid}
		}
	}
	acts, err := linehost.Init(ctx, o)
	for _, a := range acts {
		fmt.Printf("%-9s %s\n", a.What, a.Path)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server init: %v\n", err)
		return 1
	}
	cfg := filepath.Join(o.ConfigDir, "server.yaml")
	_, ps := config.CheckFile(cfg, checkOptions(true))
	if len(ps) > 0 {
		fmt.Printf("\nstill to do before serving (flashline-server check -config %s):\n", cfg)
		for _, p := range ps {
			fmt.Println("  " + p.Error())
		}
		return 0
	}
	fmt.Printf("\n%s passes its check: start the server (systemctl enable --now flashline-server)\n", cfg)
	return 0
}
