package diskimage

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Paths inside the images. Short 8.3 names keep every loader and firmware happy.
const (
	kernelPath    = "/boot/vmlinuz"
	initrdPath    = "/boot/initrd.gz"
	syslinuxDir   = "/boot/syslinux"
	efiBootDir    = "/EFI/BOOT"
	isolinuxDir   = "/isolinux"
	efiImagePath  = "/boot/efiboot.img"
	bootCatalog   = "/isolinux/boot.cat"
	efiLoaderName = "BOOTX64.EFI"
)

// loaderConfig is the syslinux/isolinux configuration: one entry, booted at once, with the
// loader's own output on the first serial port too so that a serial log shows every stage.
func loaderConfig(cmdline string) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by Flashline's diskimage package.\n")
	b.WriteString("SERIAL 0 115200\n")
	b.WriteString("DEFAULT flashline\n")
	b.WriteString("PROMPT 0\n")
	b.WriteString("TIMEOUT 0\n")
	b.WriteString("LABEL flashline\n")
	fmt.Fprintf(&b, "  LINUX %s\n", kernelPath)
	fmt.Fprintf(&b, "  INITRD %s\n", initrdPath)
	if cmdline != "" {
		fmt.Fprintf(&b, "  APPEND %s\n", cmdline)
	}
	return b.Bytes()
}

// installSyslinux runs Debian's mtools-based installer on the FAT file system that starts
// offset bytes into the image file: it writes ldlinux.sys (and ldlinux.c32) into dir and
// replaces the file system's boot code, keeping its BIOS parameter block.
func installSyslinux(ctx context.Context, installer, image string, offset int64, dir string) error {
	cmd := exec.CommandContext(ctx, installer, "--install",
		"--offset", fmt.Sprint(offset), "--directory", dir, image)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --install --offset %d --directory %s: %w: %s",
			installer, offset, dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}
