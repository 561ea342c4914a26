package diskimage

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Table is the partition table of a raw disk image.
type Table string

const (
	// GPT: a protective MBR with syslinux's gptmbr.bin, one EFI System partition marked
	// "legacy BIOS bootable".
	GPT Table = "gpt"
	// MBR: syslinux's mbr.bin and one active FAT partition. The most widely bootable layout
	// for USB sticks on old BIOSes.
	MBR Table = "mbr"
)

// DiskOptions shape a raw disk image.
type DiskOptions struct {
	// Size of the whole image in bytes; 0 picks the contents plus some room, rounded up to
	// whole MiB.
	Size  int64
	Table Table
	// Loaders default to DebianLoaders().
	Loaders *Loaders
}

const (
	sector         = 512
	partStartBytes = 1 << 20 // first partition at 1 MiB, aligned for any flash medium
	gptTailBytes   = 33 * sector
	minDiskSize    = 16 << 20
)

// WriteDisk writes a raw disk image to out that boots b on BIOS (syslinux) and on UEFI
// (syslinux.efi as \EFI\BOOT\BOOTX64.EFI). The image is written to a temporary file next to
// out and renamed into place only when complete.
func WriteDisk(ctx context.Context, out string, b Boot, o DiskOptions) (*Result, error) {
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("disk image %s: %w", out, err)
	}
	ld := DebianLoaders()
	if o.Loaders != nil {
		ld = *o.Loaders
	}
	if o.Table == "" {
		o.Table = MBR
	}
	var (
		diskID  string
		mbrSig  [4]byte
		err     error
		bootBin string
	)
	switch o.Table {
	case MBR:
		diskID, mbrSig, err = mbrDiskID(b.DiskID)
		bootBin = ld.MBR
	case GPT:
		diskID, err = gptDiskID(b.DiskID)
		bootBin = ld.GPTMBR
	default:
		err = fmt.Errorf("unknown partition table %q", o.Table)
	}
	if err != nil {
		return nil, fmt.Errorf("disk image %s: %w", out, err)
	}
	cmdline := b.cmdline(diskID)
	cfg := loaderConfig(cmdline)
	es := []entry{
		{path: kernelPath, source: b.Kernel},
		{path: initrdPath, source: b.Initrd},
		{path: syslinuxDir + "/syslinux.cfg", data: cfg},
	}
	if b.UKI != "" {
		es = append(es, entry{path: efiBootDir + "/" + efiLoaderName, source: b.UKI})
	} else {
		es = append(es,
			entry{path: efiBootDir + "/" + efiLoaderName, source: ld.SyslinuxEFI},
			entry{path: efiBootDir + "/ldlinux.e64", source: filepath.Join(ld.EFIModules, "ldlinux.e64")},
			entry{path: efiBootDir + "/syslinux.cfg", data: cfg})
	}
	es = append(es, extraEntries(b.Files)...)

	size := o.Size
	if size == 0 {
		content, err := totalSize(es, 4096)
		if err != nil {
			return nil, fmt.Errorf("disk image %s: %w", out, err)
		}
		// FATs, directories, ldlinux.sys and some room to edit syslinux.cfg on the stick.
		size = max(roundUp(content+content/8+8<<20, 1<<20), minDiskSize)
	}
	partEnd := size - gptTailBytes // also leaves MBR images a spare tail; harmless
	partSize := (partEnd - partStartBytes) / sector * sector
	if partSize < 8<<20 {
		return nil, fmt.Errorf("disk image %s: size %d too small", out, size)
	}
	if need, _ := totalSize(es, 4096); need > partSize*9/10 {
		return nil, fmt.Errorf("disk image %s: %d bytes of files do not fit a %d-byte partition", out, need, partSize)
	}

	tmp := out + ".part"
	_ = os.Remove(tmp)
	defer os.Remove(tmp)
	d, err := diskfs.Create(tmp, size, diskfs.SectorSize512)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	switch o.Table {
	case MBR:
		err = d.Partition(&mbr.Table{
			LogicalSectorSize:  sector,
			PhysicalSectorSize: sector,
			Partitions: []*mbr.Partition{{
				Index:    1,
				Bootable: true,
				Type:     mbrType(partSize),
				Start:    uint32(partStartBytes / sector),
				Size:     uint32(partSize / sector),
			}},
		})
	case GPT:
		err = d.Partition(&gpt.Table{
			LogicalSectorSize:  sector,
			PhysicalSectorSize: sector,
			ProtectiveMBR:      true,
			GUID:               diskID,
			Partitions: []*gpt.Partition{{
				Index:      1,
				Start:      uint64(partStartBytes / sector),
				End:        uint64((partStartBytes+partSize)/sector - 1),
				Type:       gpt.EFISystemPartition,
				Name:       b.label(),
				Attributes: 1 << 2, // legacy BIOS bootable: gptmbr.bin boots this one
			}},
		})
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("partition %s: %w", tmp, err)
	}
	typ := fatType(partSize)
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: typ, VolumeLabel: b.label()})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("create FAT file system in %s: %w", tmp, err)
	}
	if err := ctx.Err(); err != nil {
		d.Close()
		return nil, err
	}
	if err := writeFiles(fs, es); err != nil {
		d.Close()
		return nil, fmt.Errorf("disk image %s: %w", out, err)
	}
	if err := fs.Close(); err != nil {
		d.Close()
		return nil, fmt.Errorf("close FAT file system in %s: %w", tmp, err)
	}
	if err := d.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", tmp, err)
	}

	if err := patchDisk(tmp, bootBin, o.Table, mbrSig, typ); err != nil {
		return nil, fmt.Errorf("disk image %s: %w", out, err)
	}
	if err := installSyslinux(ctx, ld.Installer, tmp, partStartBytes, syslinuxDir); err != nil {
		return nil, fmt.Errorf("disk image %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, fmt.Errorf("disk image %s: %w", out, err)
	}
	files := make([]string, 0, len(es)+1)
	for _, e := range es {
		files = append(files, e.path)
	}
	// The installer writes both halves of syslinux' core itself.
	files = append(files, path.Join(syslinuxDir, "ldlinux.sys"), path.Join(syslinuxDir, "ldlinux.c32"))
	return &Result{Path: out, Size: size, DiskID: diskID, Cmdline: cmdline, Files: files}, nil
}

func mbrType(partSize int64) mbr.Type {
	if fatType(partSize) == filesystem.TypeFat16 {
		return mbr.Fat16bLBA
	}
	return mbr.Fat32LBA
}

// patchDisk adds what go-diskfs does not write: the BIOS boot code in the first 440 bytes,
// the MBR disk signature, and the FAT's hidden-sectors field.
func patchDisk(image, bootBin string, t Table, sig [4]byte, typ filesystem.Type) error {
	code, err := os.ReadFile(bootBin)
	if err != nil {
		return fmt.Errorf("read boot code: %w", err)
	}
	if len(code) > 440 {
		return fmt.Errorf("boot code %s is %d bytes, more than 440", bootBin, len(code))
	}
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(code, 0); err != nil {
		return fmt.Errorf("write boot code: %w", err)
	}
	if t == MBR {
		if _, err := f.WriteAt(append(sig[:], 0, 0), 440); err != nil {
			return fmt.Errorf("write disk signature: %w", err)
		}
	}
	if err := setHiddenSectors(f, partStartBytes, typ); err != nil {
		return err
	}
	return f.Close()
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
