// Package diskimage builds bootable images as plain files: a raw disk (GPT or MBR, one FAT
// partition) or a hybrid ISO, each holding a kernel, an initrd and Debian's syslinux loaders so
// that the same image boots on BIOS and on UEFI machines. Everything is written with go-diskfs
// and Debian's mtools-based syslinux installer, which work on image files: no mounting, no
// loop devices, no root.
//
// Both the test firmware image (a "device firmware" the journey flashes) and the PXE-less
// discovery media (USB stick and ISO carrying the agent) are built with it.
package diskimage

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/flashline/flashline/initramfs/uki"
	"github.com/google/uuid"
)

// Loaders are the boot loader files taken from Debian's packages (syslinux-common,
// syslinux-efi, isolinux, syslinux). The zero value of a field means "not needed" only where
// noted; DebianLoaders returns the paths the packages install.
type Loaders struct {
	// MBR is the 440-byte BIOS boot code for MBR disks (syslinux-common mbr.bin).
	MBR string
	// GPTMBR is the 440-byte BIOS boot code for GPT disks (syslinux-common gptmbr.bin): it
	// boots the partition with the "legacy BIOS bootable" attribute.
	GPTMBR string
	// BIOSModules is syslinux's BIOS module directory; ldlinux.c32 is taken from it.
	BIOSModules string
	// SyslinuxEFI is syslinux.efi for x86-64 UEFI (syslinux-efi); it becomes BOOTX64.EFI.
	SyslinuxEFI string
	// EFIModules is syslinux's efi64 module directory; ldlinux.e64 is taken from it.
	EFIModules string
	// Isolinux is isolinux.bin, the El Torito BIOS loader (isolinux package).
	Isolinux string
	// IsoHybridMBR is isohdpfx.bin, the MBR code that lets the ISO boot from a USB disk.
	IsoHybridMBR string
	// UKIStub is the systemd EFI stub (systemd-boot-efi) for unified kernel images.
	UKIStub string
	// Installer is the mtools-based syslinux installer (the syslinux package's `syslinux`),
	// which writes ldlinux.sys and the FAT boot sector into an image file at an offset.
	Installer string
}

// DebianLoaders returns the file locations of Debian 12's syslinux packages.
func DebianLoaders() Loaders {
	return Loaders{
		MBR:          "/usr/lib/syslinux/mbr/mbr.bin",
		GPTMBR:       "/usr/lib/syslinux/mbr/gptmbr.bin",
		BIOSModules:  "/usr/lib/syslinux/modules/bios",
		SyslinuxEFI:  "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi",
		EFIModules:   "/usr/lib/syslinux/modules/efi64",
		Isolinux:     "/usr/lib/ISOLINUX/isolinux.bin",
		IsoHybridMBR: "/usr/lib/ISOLINUX/isohdpfx.bin",
		UKIStub:      uki.DefaultStub,
		Installer:    "syslinux",
	}
}

// Boot is what the image boots: one kernel, one initrd, one command line.
type Boot struct {
	// Kernel and Initrd are host paths.
	Kernel string
	Initrd string
	// Cmdline is the kernel command line (without initrd=, which the loader config adds).
	Cmdline string
	// Label is the FAT volume label and the ISO volume identifier (upper case, at most 11
	// characters for FAT); default "FLASHLINE".
	Label string
	// Files are extra files to put into the image, e.g. a README.
	Files []File
	// MarkMedia appends flashline.bootmedia=ptuuid:<id> to the command line, where <id> is
	// the partition table's identifier written into this image, so that the agent can tell
	// which disk it booted from and never choose it as a flash target.
	MarkMedia bool
	// UKI is a ready EFI binary, typically the trust issue's signed unified kernel image
	// (make uki), to use as \EFI\BOOT\BOOTX64.EFI instead of syslinux.efi: Secure Boot
	// firmware only starts signed loaders. It carries its own command line, so the media
	// marker and -server of this build do not reach the UEFI boot path.
	UKI string
	// DiskID fixes the partition table identifier (8 hex digits for MBR and ISO, a UUID for
	// GPT); empty means a random one. Useful for reproducible builds and tests.
	DiskID string
}

// File is one extra file for an image.
type File struct {
	// Path inside the image, slash-separated, e.g. "/README.txt".
	Path string
	// Source is a host file to copy; when empty, Data is used.
	Source string
	Data   []byte
}

// Result describes an image that was written.
type Result struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// DiskID is the partition table identifier (blkid's PTUUID): the MBR disk signature as 8
	// hex digits, or the GPT disk GUID.
	DiskID string `json:"disk_id"`
	// Cmdline is the kernel command line the loaders pass, marker included.
	Cmdline string `json:"cmdline"`
	// Files lists the paths written into the image's file systems.
	Files []string `json:"files"`
}

// BootMediaParam is the kernel parameter that names the boot medium.
const BootMediaParam = "flashline.bootmedia"

const defaultLabel = "FLASHLINE"

func (b Boot) label() string {
	if b.Label == "" {
		return defaultLabel
	}
	return b.Label
}

func (b Boot) validate() error {
	if b.Kernel == "" || b.Initrd == "" {
		return errors.New("kernel and initrd are required")
	}
	for _, p := range []string{b.Kernel, b.Initrd, b.UKI} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	l := b.label()
	if len(l) > 11 {
		return fmt.Errorf("label %q is longer than 11 characters", l)
	}
	for _, r := range l {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("label %q: only A-Z, 0-9, '_' and '-' are allowed", l)
		}
	}
	for _, f := range b.Files {
		if !strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path {
			return fmt.Errorf("extra file path %q must be absolute and clean", f.Path)
		}
	}
	return nil
}

// cmdline returns the command line with the boot media marker when asked for.
func (b Boot) cmdline(diskID string) string {
	c := strings.TrimSpace(b.Cmdline)
	if b.MarkMedia {
		c = strings.TrimSpace(c + " " + BootMediaParam + "=ptuuid:" + diskID)
	}
	return c
}

// mbrDiskID returns b.DiskID checked as an MBR disk signature, or a random one.
func mbrDiskID(want string) (string, [4]byte, error) {
	var sig [4]byte
	if want == "" {
		if _, err := rand.Read(sig[:]); err != nil {
			return "", sig, err
		}
		if sig == [4]byte{} {
			sig[0] = 1
		}
	} else {
		b, err := hex.DecodeString(want)
		if err != nil || len(b) != 4 {
			return "", sig, fmt.Errorf("MBR disk id %q: want 8 hex digits", want)
		}
		// blkid prints the little-endian 32-bit signature as a number.
		sig = [4]byte{b[3], b[2], b[1], b[0]}
	}
	return fmt.Sprintf("%02x%02x%02x%02x", sig[3], sig[2], sig[1], sig[0]), sig, nil
}

// gptDiskID returns b.DiskID checked as a GUID, or a random one.
func gptDiskID(want string) (string, error) {
	if want == "" {
		return uuid.NewString(), nil
	}
	u, err := uuid.Parse(want)
	if err != nil {
		return "", fmt.Errorf("GPT disk id %q: %w", want, err)
	}
	return u.String(), nil
}
