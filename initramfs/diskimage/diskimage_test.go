package diskimage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// needLoaders skips when Debian's syslinux packages are not installed (scripts/setup installs
// them in CI).
func needLoaders(t *testing.T) Loaders {
	t.Helper()
	ld := DebianLoaders()
	for _, p := range []string{ld.MBR, ld.GPTMBR, ld.SyslinuxEFI, ld.Isolinux, ld.IsoHybridMBR, filepath.Join(ld.BIOSModules, "ldlinux.c32")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("syslinux packages missing: %v", err)
		}
	}
	if _, err := exec.LookPath(ld.Installer); err != nil {
		t.Skipf("syslinux installer missing (apt-get install syslinux): %v", err)
	}
	return ld
}

// fakeBoot makes a kernel and an initrd with recognisable contents. They are not bootable;
// the QEMU tests (tag e2e) boot real ones.
func fakeBoot(t *testing.T) Boot {
	t.Helper()
	dir := t.TempDir()
	k := filepath.Join(dir, "vmlinuz")
	i := filepath.Join(dir, "initrd.gz")
	if err := os.WriteFile(k, bytes.Repeat([]byte("KERNEL--"), 300000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(i, bytes.Repeat([]byte("INITRD--"), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	return Boot{Kernel: k, Initrd: i, Cmdline: "console=ttyS0,115200 flashline.server=http://10.0.2.2:8080",
		Files: []File{{Path: "/README.txt", Data: []byte("hello")}}}
}

// readFAT reads a file from the FAT file system at offset in img with mtools, the
// reference reader (go-diskfs is what wrote it).
func readFAT(t *testing.T, img string, offset int64, p string) []byte {
	t.Helper()
	cmd := exec.Command("mcopy", "-n", "-i", fmt.Sprintf("%s@@%d", img, offset), "::"+p, "-")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("mcopy %s from %s: %v: %s", p, img, err, stderr.Bytes())
	}
	return b
}

// readFile reads a file with go-diskfs (used for the ISO 9660 side).
func readFile(t *testing.T, img string, part int, p string) []byte {
	t.Helper()
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(part)
	if err != nil {
		t.Fatalf("file system %d of %s: %v", part, img, err)
	}
	f, err := fs.OpenFile(p, os.O_RDONLY)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteDisk(t *testing.T) {
	ld := needLoaders(t)
	for _, tc := range []struct {
		table  Table
		diskID string
		size   int64
	}{
		{MBR, "1a2b3c4d", 0},
		{GPT, "6f1e2d3c-0000-4000-8000-000000000001", 40 << 20},
	} {
		t.Run(string(tc.table), func(t *testing.T) {
			b := fakeBoot(t)
			b.MarkMedia = true
			b.DiskID = tc.diskID
			out := filepath.Join(t.TempDir(), "disk.img")
			res, err := WriteDisk(context.Background(), out, b, DiskOptions{Table: tc.table, Size: tc.size})
			if err != nil {
				t.Fatal(err)
			}
			if res.DiskID != tc.diskID || !strings.HasSuffix(res.Cmdline, " flashline.bootmedia=ptuuid:"+tc.diskID) {
				t.Errorf("result %+v: want disk id %s in the command line", res, tc.diskID)
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if tc.size != 0 && int64(len(raw)) != tc.size {
				t.Errorf("size %d, want %d", len(raw), tc.size)
			}
			code, _ := os.ReadFile(map[Table]string{MBR: ld.MBR, GPT: ld.GPTMBR}[tc.table])
			if !bytes.Equal(raw[:len(code)], code) {
				t.Error("first 440 bytes are not syslinux's boot code")
			}
			if raw[510] != 0x55 || raw[511] != 0xaa {
				t.Error("no boot signature")
			}

			d, err := diskfs.Open(out, diskfs.WithOpenMode(diskfs.ReadOnly))
			if err != nil {
				t.Fatal(err)
			}
			pt, err := d.GetPartitionTable()
			d.Close()
			if err != nil {
				t.Fatal(err)
			}
			switch p := pt.(type) {
			case *mbr.Table:
				if tc.table != MBR || len(p.Partitions) == 0 || !p.Partitions[0].Bootable || p.Partitions[0].Start != 2048 || p.Partitions[1].Type != mbr.Empty {
					t.Errorf("MBR table %+v", p.Partitions)
				}
				if got := binary.LittleEndian.Uint32(raw[440:]); got != 0x1a2b3c4d {
					t.Errorf("disk signature %08x, want 1a2b3c4d (blkid PTUUID)", got)
				}
			case *gpt.Table:
				if tc.table != GPT || len(p.Partitions) != 1 || p.Partitions[0].Attributes&4 == 0 || p.Partitions[0].Type != gpt.EFISystemPartition {
					t.Errorf("GPT table %+v", p.Partitions)
				}
				if !strings.EqualFold(p.GUID, tc.diskID) {
					t.Errorf("GPT disk GUID %s, want %s", p.GUID, tc.diskID)
				}
			default:
				t.Fatalf("partition table %T", pt)
			}

			// The FAT boot sector knows where its partition starts, and syslinux owns it.
			vbr := raw[partStartBytes : partStartBytes+512]
			if got := binary.LittleEndian.Uint32(vbr[bpbHiddenSectors:]); got != 2048 {
				t.Errorf("hidden sectors %d, want 2048", got)
			}
			if string(vbr[3:11]) != "SYSLINUX" {
				t.Errorf("boot sector OEM name %q: syslinux not installed", vbr[3:11])
			}

			kernel, _ := os.ReadFile(b.Kernel)
			if got := readFAT(t, out, partStartBytes, "/boot/vmlinuz"); !bytes.Equal(got, kernel) {
				t.Error("kernel differs in the image")
			}
			cfg := string(readFAT(t, out, partStartBytes, "/boot/syslinux/syslinux.cfg"))
			if !strings.Contains(cfg, "APPEND "+res.Cmdline+"\n") || !strings.Contains(cfg, "INITRD /boot/initrd.gz") {
				t.Errorf("syslinux.cfg:\n%s", cfg)
			}
			if efiCfg := string(readFAT(t, out, partStartBytes, "/EFI/BOOT/syslinux.cfg")); efiCfg != cfg {
				t.Error("UEFI and BIOS configurations differ")
			}
			efi, _ := os.ReadFile(ld.SyslinuxEFI)
			if !bytes.Equal(readFAT(t, out, partStartBytes, "/EFI/BOOT/BOOTX64.EFI"), efi) {
				t.Error("BOOTX64.EFI is not syslinux.efi")
			}
			if len(readFAT(t, out, partStartBytes, "/boot/syslinux/ldlinux.sys")) == 0 {
				t.Error("ldlinux.sys empty")
			}
			if string(readFAT(t, out, partStartBytes, "/README.txt")) != "hello" {
				t.Error("extra file missing")
			}
		})
	}
}

func TestWriteDiskErrors(t *testing.T) {
	b := fakeBoot(t)
	dir := t.TempDir()
	for name, c := range map[string]struct {
		b Boot
		o DiskOptions
	}{
		"no kernel":      {Boot{Initrd: b.Initrd}, DiskOptions{}},
		"missing initrd": {Boot{Kernel: b.Kernel, Initrd: filepath.Join(dir, "nope")}, DiskOptions{}},
		"long label":     {Boot{Kernel: b.Kernel, Initrd: b.Initrd, Label: "ABCDEFGHIJKL"}, DiskOptions{}},
		"bad label":      {Boot{Kernel: b.Kernel, Initrd: b.Initrd, Label: "a b"}, DiskOptions{}},
		"bad table":      {b, DiskOptions{Table: "apm"}},
		"bad mbr id":     {Boot{Kernel: b.Kernel, Initrd: b.Initrd, DiskID: "xyz"}, DiskOptions{}},
		"bad gpt id":     {Boot{Kernel: b.Kernel, Initrd: b.Initrd, DiskID: "xyz"}, DiskOptions{Table: GPT}},
		"too small":      {b, DiskOptions{Size: 4 << 20}},
		"files too big":  {Boot{Kernel: b.Kernel, Initrd: b.Initrd, Files: []File{{Path: "/big", Data: make([]byte, 9<<20)}}}, DiskOptions{Size: 12 << 20}},
		"relative extra": {Boot{Kernel: b.Kernel, Initrd: b.Initrd, Files: []File{{Path: "x"}}}, DiskOptions{}},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".img")
		if _, err := WriteDisk(context.Background(), out, c.b, c.o); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: left %s behind", name, out)
		}
	}
}

func TestWriteISO(t *testing.T) {
	ld := needLoaders(t)
	for _, efi := range []EFILoader{EFISyslinux, EFIUKI} {
		t.Run(string(efi), func(t *testing.T) {
			if efi == EFIUKI {
				if _, err := os.Stat(ld.UKIStub); err != nil {
					t.Skipf("systemd stub missing (apt-get install systemd-boot-efi): %v", err)
				}
			}
			b := fakeBoot(t)
			if efi == EFIUKI {
				// The UKI builder checks for a real bzImage.
				k, err := filepath.Glob("/var/cache/flashline/kernel/boot/vmlinuz-*")
				if err != nil || len(k) == 0 {
					t.Skip("no real kernel for a unified kernel image")
				}
				b.Kernel = k[0]
			}
			b.MarkMedia = true
			b.DiskID = "0badcafe"
			out := filepath.Join(t.TempDir(), "x.iso")
			res, err := WriteISO(context.Background(), out, b, ISOOptions{EFI: efi})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(raw)) != res.Size || res.Size%hybridAlign != 0 {
				t.Errorf("size %d (result %d), want a multiple of %d", len(raw), res.Size, hybridAlign)
			}
			code, _ := os.ReadFile(ld.IsoHybridMBR)
			if !bytes.Equal(raw[:432], code) || raw[510] != 0x55 || raw[511] != 0xaa {
				t.Fatal("no isohybrid MBR")
			}
			if got := binary.LittleEndian.Uint32(raw[440:]); got != 0x0badcafe {
				t.Errorf("disk signature %08x", got)
			}
			// The MBR's boot file address points at isolinux.bin.
			isolinux, _ := os.ReadFile(ld.Isolinux)
			at := int64(binary.LittleEndian.Uint32(raw[432:])) * 512
			// Bytes 8-63 are the boot info table go-diskfs fills in.
			if !bytes.Equal(raw[at:at+8], isolinux[:8]) || !bytes.Equal(raw[at+64:at+2048], isolinux[64:2048]) {
				t.Error("offset 432 does not address isolinux.bin")
			}
			p1, p2 := raw[446:462], raw[462:478]
			if p1[0] != 0x80 || p1[4] != 0 || binary.LittleEndian.Uint32(p1[8:]) != 0 || int64(binary.LittleEndian.Uint32(p1[12:]))*512 != res.Size {
				t.Errorf("partition 1 %x: want active, type 0, the whole image", p1)
			}
			if p2[4] != 0xef {
				t.Errorf("partition 2 type %#x, want 0xef", p2[4])
			}
			// Partition 2 holds a FAT file system with the UEFI loader.
			esp := int64(binary.LittleEndian.Uint32(p2[8:])) * 512
			espSize := int64(binary.LittleEndian.Uint32(p2[12:])) * 512
			espFile := filepath.Join(t.TempDir(), "esp.img")
			if err := os.WriteFile(espFile, raw[esp:esp+espSize], 0o644); err != nil {
				t.Fatal(err)
			}
			loader := readFAT(t, espFile, 0, "/EFI/BOOT/BOOTX64.EFI")
			switch efi {
			case EFISyslinux:
				want, _ := os.ReadFile(ld.SyslinuxEFI)
				if !bytes.Equal(loader, want) {
					t.Error("BOOTX64.EFI is not syslinux.efi")
				}
				if !strings.Contains(string(readFAT(t, espFile, 0, "/EFI/BOOT/syslinux.cfg")), res.Cmdline) {
					t.Error("EFI syslinux.cfg lacks the command line")
				}
			case EFIUKI:
				if !bytes.Contains(loader, []byte(res.Cmdline)) || string(loader[:2]) != "MZ" {
					t.Error("BOOTX64.EFI is not a UKI with the command line")
				}
			}
			// The ISO 9660 side.
			cfg := string(readFile(t, out, 0, "/isolinux/isolinux.cfg"))
			if !strings.Contains(cfg, "APPEND "+res.Cmdline+"\n") {
				t.Errorf("isolinux.cfg:\n%s", cfg)
			}
			initrd, _ := os.ReadFile(b.Initrd)
			if !bytes.Equal(readFile(t, out, 0, "/boot/initrd.gz"), initrd) {
				t.Error("initrd differs in the ISO")
			}
		})
	}
}

func TestCHS(t *testing.T) {
	for _, tc := range []struct {
		lba  uint32
		want []byte
	}{
		{0, []byte{0, 1, 0}},
		{31, []byte{0, 32, 0}},
		{32, []byte{1, 1, 0}},
		{2048, []byte{0, 1, 1}},
		{2048 * 300, []byte{0, 1 | 1<<6, 300 - 256}},
		{2048*1024 + 5, []byte{63, 32 | 3<<6, 0xff}},
	} {
		if got := chs(tc.lba); !bytes.Equal(got, tc.want) {
			t.Errorf("chs(%d) = %v, want %v", tc.lba, got, tc.want)
		}
	}
}

func TestLoaderConfig(t *testing.T) {
	got := string(loaderConfig("console=ttyS0 a=b"))
	for _, want := range []string{"DEFAULT flashline\n", "TIMEOUT 0\n", "LINUX /boot/vmlinuz\n", "INITRD /boot/initrd.gz\n", "APPEND console=ttyS0 a=b\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(string(loaderConfig("")), "APPEND") {
		t.Error("empty command line still has APPEND")
	}
}

func TestGivenUKI(t *testing.T) {
	needLoaders(t)
	b := fakeBoot(t)
	b.UKI = filepath.Join(t.TempDir(), "flashline.efi")
	if err := os.WriteFile(b.UKI, []byte("MZ signed unified kernel image"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "usb.img")
	if _, err := WriteDisk(context.Background(), disk, b, DiskOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := string(readFAT(t, disk, partStartBytes, "/EFI/BOOT/BOOTX64.EFI")); got != "MZ signed unified kernel image" {
		t.Errorf("disk BOOTX64.EFI = %q", got)
	}
	cmd := exec.Command("mdir", "-b", "-i", disk+"@@1048576", "::/EFI/BOOT")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.Output(); err != nil || strings.Contains(string(out), "ldlinux.e64") {
		t.Errorf("EFI directory with a given UKI: %q, %v (want no syslinux.efi files)", out, err)
	}
	iso := filepath.Join(dir, "x.iso")
	if _, err := WriteISO(context.Background(), iso, b, ISOOptions{EFI: EFISyslinux}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(iso)
	esp := int64(binary.LittleEndian.Uint32(raw[462+8:])) * 512
	espFile := filepath.Join(dir, "esp.img")
	os.WriteFile(espFile, raw[esp:], 0o644)
	if got := string(readFAT(t, espFile, 0, "/EFI/BOOT/BOOTX64.EFI")); got != "MZ signed unified kernel image" {
		t.Errorf("ISO BOOTX64.EFI = %q", got)
	}
}
