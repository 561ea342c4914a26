// Command mkuki builds a unified kernel image (`make uki`): the systemd EFI stub with the
// kernel, initrd.gz and the kernel command line in one EFI binary, ready to be signed with the
// machine owner's db key (see docs/trust.md):
//
//	go run ./initramfs/mkuki -kernel vmlinuz -initrd initrd.gz \
//	    -cmdline "console=ttyS0,115200 flashline.server=https://10.0.0.1:8443" -o flashline.efi
//	sbsign --key db.key --cert db.crt --output flashline.signed.efi flashline.efi
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/flashline/flashline/initramfs/uki"
)

func main() {
	stub := flag.String("stub", uki.DefaultStub, "systemd EFI stub (Debian package systemd-boot-efi)")
	kernel := flag.String("kernel", os.Getenv("FLASHLINE_KERNEL"), "x86-64 kernel image (bzImage)")
	initrd := flag.String("initrd", "initrd.gz", "initramfs")
	cmdline := flag.String("cmdline", "", "kernel command line baked into the image (under Secure Boot it cannot be changed at boot)")
	cmdlineFile := flag.String("cmdline-file", "", "read the command line from this file instead")
	osName := flag.String("name", "Flashline agent", "name shown by boot menus (.osrel PRETTY_NAME)")
	out := flag.String("o", "flashline.efi", "output file")
	flag.Parse()
	if err := run(*stub, *kernel, *initrd, *cmdline, *cmdlineFile, *osName, *out); err != nil {
		fmt.Fprintf(os.Stderr, "mkuki: %v\n", err)
		os.Exit(1)
	}
}

func run(stubPath, kernelPath, initrdPath, cmdline, cmdlineFile, name, out string) error {
	if kernelPath == "" {
		return fmt.Errorf("no kernel: give -kernel or set FLASHLINE_KERNEL")
	}
	if cmdlineFile != "" {
		b, err := os.ReadFile(cmdlineFile)
		if err != nil {
			return err
		}
		cmdline = string(b)
	}
	stub, err := os.ReadFile(stubPath)
	if err != nil {
		return fmt.Errorf("read the EFI stub (apt-get install systemd-boot-efi): %w", err)
	}
	k, err := os.ReadFile(kernelPath)
	if err != nil {
		return fmt.Errorf("read kernel: %w", err)
	}
	var rd []byte
	if initrdPath != "" {
		if rd, err = os.ReadFile(initrdPath); err != nil {
			return fmt.Errorf("read initrd: %w", err)
		}
	}
	osrel := fmt.Sprintf("NAME=%q\nID=flashline\nPRETTY_NAME=%q\n", "Flashline", name)
	img, err := uki.Build(uki.Input{Stub: stub, Kernel: k, Initrd: rd, Cmdline: cmdline, OSRelease: osrel})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkuki-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(img); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Printf("mkuki: %s (%d bytes): kernel %s, initrd %s, cmdline %q\n", out, len(img), kernelPath, initrdPath, strings.TrimSpace(cmdline))
	fmt.Printf("mkuki: UNSIGNED: sign it with the db key enrolled in the devices' firmware, e.g.\n  sbsign --key db.key --cert db.crt --output %s %s\n", strings.TrimSuffix(out, ".efi")+".signed.efi", out)
	return nil
}
