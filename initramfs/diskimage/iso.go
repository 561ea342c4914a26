package diskimage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/flashline/flashline/initramfs/uki"
)

// ISOOptions shape a hybrid ISO image.
type ISOOptions struct {
	// Loaders default to DebianLoaders().
	Loaders *Loaders
	// EFI chooses the UEFI loader: EFISyslinux or EFIUKI; empty means EFIUKI when the stub
	// is installed.
	EFI EFILoader
}

// EFILoader is what \EFI\BOOT\BOOTX64.EFI of an ISO is.
type EFILoader string

const (
	// EFISyslinux: syslinux.efi with its config, kernel and initrd in the El Torito FAT
	// image. It boots from a USB stick but not from an optical disc: syslinux.efi cannot
	// read 2048-byte-sector media.
	EFISyslinux EFILoader = "syslinux"
	// EFIUKI: a unified kernel image (systemd's stub with the kernel, initrd and command
	// line inside, built by initramfs/uki): it reads nothing from the medium, so it also
	// boots from a CD.
	EFIUKI EFILoader = "uki"
	// efiGiven: Boot.UKI, built elsewhere (and signed), used as it is.
	efiGiven EFILoader = "given"
)

const (
	isoBlock = 2048
	// hybridAlign pads the image to whole 64-head, 32-sector cylinders, as isohybrid does, so
	// that BIOSes that insist on CHS geometry see a whole number of cylinders.
	hybridAlign = 64 * 32 * sector
)

// WriteISO writes a hybrid ISO to out: bootable from a CD (El Torito: isolinux for BIOS, a
// FAT image with syslinux.efi for UEFI) and, written to a USB stick, from a disk (an MBR with
// isohdpfx.bin for BIOS and a partition of type 0xEF over the FAT image for UEFI).
func WriteISO(ctx context.Context, out string, b Boot, o ISOOptions) (*Result, error) {
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("iso image %s: %w", out, err)
	}
	ld := DebianLoaders()
	if o.Loaders != nil {
		ld = *o.Loaders
	}
	diskID, sig, err := mbrDiskID(b.DiskID)
	if err != nil {
		return nil, fmt.Errorf("iso image %s: %w", out, err)
	}
	cmdline := b.cmdline(diskID)
	cfg := loaderConfig(cmdline)

	work, err := os.MkdirTemp(filepath.Dir(out), ".iso-work-")
	if err != nil {
		return nil, fmt.Errorf("iso image %s: %w", out, err)
	}
	defer os.RemoveAll(work)

	efiLoader := o.EFI
	if b.UKI != "" {
		efiLoader = efiGiven
	}
	if efiLoader == "" {
		efiLoader = EFISyslinux
		if _, err := os.Stat(ld.UKIStub); err == nil {
			efiLoader = EFIUKI
		}
	}
	var efiEntries []entry
	switch efiLoader {
	case EFISyslinux:
		// syslinux.efi reads its config, kernel and initrd from the file system it was
		// loaded from, which for El Torito is this FAT image, so they live in it too.
		efiEntries = []entry{
			{path: efiBootDir + "/" + efiLoaderName, source: ld.SyslinuxEFI},
			{path: efiBootDir + "/ldlinux.e64", source: filepath.Join(ld.EFIModules, "ldlinux.e64")},
			{path: efiBootDir + "/syslinux.cfg", data: cfg},
			{path: kernelPath, source: b.Kernel},
			{path: initrdPath, source: b.Initrd},
		}
	case EFIUKI:
		img, err := buildUKI(ld.UKIStub, b.Kernel, b.Initrd, cmdline)
		if err != nil {
			return nil, fmt.Errorf("iso image %s: %w", out, err)
		}
		efiEntries = []entry{{path: efiBootDir + "/" + efiLoaderName, data: img}}
	case efiGiven:
		efiEntries = []entry{{path: efiBootDir + "/" + efiLoaderName, source: b.UKI}}
	default:
		return nil, fmt.Errorf("iso image %s: unknown EFI loader %q", out, efiLoader)
	}
	efiImg := filepath.Join(work, "efiboot.img")
	if err := writeFATImage(ctx, efiImg, efiEntries); err != nil {
		return nil, fmt.Errorf("iso image %s: EFI boot image: %w", out, err)
	}

	es := []entry{
		{path: isolinuxDir + "/isolinux.bin", source: ld.Isolinux},
		{path: isolinuxDir + "/ldlinux.c32", source: filepath.Join(ld.BIOSModules, "ldlinux.c32")},
		{path: isolinuxDir + "/isolinux.cfg", data: cfg},
		{path: kernelPath, source: b.Kernel},
		{path: initrdPath, source: b.Initrd},
		{path: efiImagePath, source: efiImg},
	}
	es = append(es, extraEntries(b.Files)...)
	content, err := totalSize(es, isoBlock)
	if err != nil {
		return nil, fmt.Errorf("iso image %s: %w", out, err)
	}

	tmp := out + ".part"
	_ = os.Remove(tmp)
	defer os.Remove(tmp)
	d, err := diskfs.Create(tmp, roundUp(content+4<<20, hybridAlign), diskfs.SectorSizeDefault)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	d.LogicalBlocksize = isoBlock
	isoWork := filepath.Join(work, "iso")
	if err := os.Mkdir(isoWork, 0o755); err != nil {
		d.Close()
		return nil, err
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, VolumeLabel: b.label(), WorkDir: isoWork})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("create ISO 9660 file system: %w", err)
	}
	if err := writeFiles(fs, es); err != nil {
		d.Close()
		return nil, fmt.Errorf("iso image %s: %w", out, err)
	}
	iso, ok := fs.(*iso9660.FileSystem)
	if !ok {
		d.Close()
		return nil, errors.New("go-diskfs returned no ISO 9660 file system")
	}
	bios := &iso9660.ElToritoEntry{
		Platform:  iso9660.BIOS,
		Emulation: iso9660.NoEmulation,
		BootFile:  isolinuxDir + "/isolinux.bin",
		BootTable: true, // isolinux finds itself on the disc through the boot info table
	}
	bios.SetLoadSize(4)
	err = iso.Finalize(iso9660.FinalizeOptions{
		RockRidge:        true,
		VolumeIdentifier: b.label(),
		ElTorito: &iso9660.ElTorito{
			BootCatalog:     bootCatalog,
			HideBootCatalog: false,
			Entries: []*iso9660.ElToritoEntry{
				bios,
				{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: efiImagePath},
			},
		},
	})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("finalize ISO 9660: %w", err)
	}
	if err := d.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", tmp, err)
	}
	efiInfo, err := os.Stat(efiImg)
	if err != nil {
		return nil, err
	}
	size, err := makeHybrid(tmp, ld.IsoHybridMBR, sig, efiInfo.Size())
	if err != nil {
		return nil, fmt.Errorf("iso image %s: make hybrid: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, fmt.Errorf("iso image %s: %w", out, err)
	}
	files := make([]string, 0, len(es)+len(efiEntries))
	for _, e := range es {
		files = append(files, e.path)
	}
	for _, e := range efiEntries {
		files = append(files, efiImagePath+":"+e.path)
	}
	return &Result{Path: out, Size: size, DiskID: diskID, Cmdline: cmdline, Files: files}, nil
}

// buildUKI makes an unsigned unified kernel image with initramfs/uki.
func buildUKI(stub, kernel, initrd, cmdline string) ([]byte, error) {
	var in uki.Input
	for _, f := range []struct {
		p   string
		dst *[]byte
	}{{stub, &in.Stub}, {kernel, &in.Kernel}, {initrd, &in.Initrd}} {
		b, err := os.ReadFile(f.p)
		if err != nil {
			return nil, fmt.Errorf("unified kernel image: %w", err)
		}
		*f.dst = b
	}
	in.Cmdline = cmdline
	in.OSRelease = "NAME=Flashline\nID=flashline\nPRETTY_NAME=\"Flashline discovery\"\n"
	img, err := uki.Build(in)
	if err != nil {
		return nil, fmt.Errorf("unified kernel image: %w", err)
	}
	return img, nil
}

// writeFATImage writes a whole-file FAT file system (no partition table) holding es, sized to
// its contents.
func writeFATImage(ctx context.Context, out string, es []entry) error {
	content, err := totalSize(es, 4096)
	if err != nil {
		return err
	}
	size := max(roundUp(content+content/16+1<<20, 1<<20), 8<<20)
	d, err := diskfs.Create(out, size, diskfs.SectorSize512)
	if err != nil {
		return err
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: fatType(size), VolumeLabel: "EFIBOOT"})
	if err != nil {
		d.Close()
		return err
	}
	if err := ctx.Err(); err != nil {
		d.Close()
		return err
	}
	if err := writeFiles(fs, es); err != nil {
		d.Close()
		return err
	}
	if err := fs.Close(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// isoBootEntries reads the El Torito boot catalog of a finished ISO and returns the start
// blocks (2048 bytes) of the default (BIOS) entry and of the first section entry (EFI).
func isoBootEntries(f *os.File) (biosLBA, efiLBA uint32, err error) {
	brvd := make([]byte, isoBlock)
	if _, err := f.ReadAt(brvd, 17*isoBlock); err != nil {
		return 0, 0, fmt.Errorf("read boot record: %w", err)
	}
	if brvd[0] != 0 || string(brvd[1:6]) != "CD001" || string(brvd[7:30]) != "EL TORITO SPECIFICATION" {
		return 0, 0, errors.New("no El Torito boot record at block 17")
	}
	cat := make([]byte, isoBlock)
	if _, err := f.ReadAt(cat, int64(binary.LittleEndian.Uint32(brvd[0x47:]))*isoBlock); err != nil {
		return 0, 0, fmt.Errorf("read boot catalog: %w", err)
	}
	if cat[0] != 1 || cat[0x1e] != 0x55 || cat[0x1f] != 0xaa || cat[32] != 0x88 {
		return 0, 0, errors.New("boot catalog has no bootable default entry")
	}
	biosLBA = binary.LittleEndian.Uint32(cat[32+8:])
	if (cat[64] != 0x90 && cat[64] != 0x91) || cat[65] != byte(iso9660.EFI) || cat[96] != 0x88 {
		return 0, 0, errors.New("boot catalog has no EFI section")
	}
	efiLBA = binary.LittleEndian.Uint32(cat[96+8:])
	return biosLBA, efiLBA, nil
}

// makeHybrid turns the ISO into one that also boots as a disk: it pads it to whole
// cylinders and writes the MBR isohybrid(1) would write with --uefi. Partition 1 spans the
// image from sector 0 with type 0x00, as Debian's own ISOs do, so that UEFI firmware, which
// ignores type-0 entries, does not reject the table for overlapping partition 2, the EFI
// System partition over the El Torito FAT image. It returns the final size.
func makeHybrid(image, mbrCode string, sig [4]byte, efiSize int64) (int64, error) {
	code, err := os.ReadFile(mbrCode)
	if err != nil {
		return 0, err
	}
	if len(code) != 432 {
		return 0, fmt.Errorf("%s is %d bytes, want the 432 of isohdpfx.bin", mbrCode, len(code))
	}
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	pvd := make([]byte, isoBlock)
	if _, err := f.ReadAt(pvd, 16*isoBlock); err != nil {
		return 0, fmt.Errorf("read primary volume descriptor: %w", err)
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return 0, errors.New("no primary volume descriptor at block 16")
	}
	volSize := int64(binary.LittleEndian.Uint32(pvd[80:])) * isoBlock
	size := roundUp(volSize, hybridAlign)
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	biosLBA, efiLBA, err := isoBootEntries(f)
	if err != nil {
		return 0, err
	}
	mbr := hybridMBR(code, sig, biosLBA, efiLBA, efiSize, size)
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return 0, err
	}
	return size, f.Close()
}

// hybridMBR builds the 512-byte MBR of a hybrid ISO.
func hybridMBR(code []byte, sig [4]byte, biosLBA, efiLBA uint32, efiSize, imageSize int64) []byte {
	b := make([]byte, sector)
	copy(b, code)
	// isohdpfx.bin loads isolinux.bin from this 512-byte-sector address (64 bits).
	binary.LittleEndian.PutUint32(b[432:], biosLBA*4)
	copy(b[440:444], sig[:])
	putPartition(b[446:462], 0x80, 0x00, 0, uint32(imageSize/sector))
	putPartition(b[462:478], 0x00, 0xef, efiLBA*4, uint32((efiSize+sector-1)/sector))
	b[510], b[511] = 0x55, 0xaa
	return b
}

func putPartition(e []byte, status, typ byte, start, count uint32) {
	e[0] = status
	copy(e[1:4], chs(start))
	e[4] = typ
	copy(e[5:8], chs(start+count-1))
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], count)
}

// chs encodes lba in the 64-head, 32-sector geometry isohybrid uses, saturating at the
// largest encodable address as partitioning tools do.
func chs(lba uint32) []byte {
	const heads, spt = 64, 32
	c := lba / (heads * spt)
	h := (lba / spt) % heads
	s := lba%spt + 1
	if c > 1023 {
		c, h, s = 1023, heads-1, spt
	}
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}
