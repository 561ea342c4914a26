package target

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"golang.org/x/sys/unix"
)

func TestParseMountinfo(t *testing.T) {
	in := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 8:1 / /mnt/my\040disk rw - vfat /dev/sda1 rw

36 22 0:5 / /dev rw - devtmpfs udev rw
`
	m, err := ParseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || m[1].Dev != "8:1" || m[1].Point != "/mnt/my disk" || m[0].Dev != "254:0" {
		t.Fatalf("%+v", m)
	}
	for _, bad := range []string{"1 2 3\n", "1 2 x:y / /mnt - a b c\n", "1 2 8 / /mnt - a b c\n"} {
		if _, err := ParseMountinfo(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n")
	f.Add("35 22 8:1 / /mnt/a\\040b rw - vfat /dev/sda1 rw\n")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMountinfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			maj, min, ok := strings.Cut(m.Dev, ":")
			if !ok || maj == "" || min == "" {
				t.Fatalf("bad dev %q", m.Dev)
			}
		}
	})
}

// fakeSys builds a sysfs with disk sda (8:0) holding partitions sda1 (8:1) and sda2 (8:2).
func fakeSys(t *testing.T, removable string, mounts string, holder string) *Checker {
	root := t.TempDir()
	disk := filepath.Join(root, "sys/devices/pci0/block/sda")
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(disk, "dev"), "8:0\n")
	write(filepath.Join(disk, "removable"), removable+"\n")
	write(filepath.Join(disk, "queue/write_zeroes_max_bytes"), "0\n")
	os.MkdirAll(filepath.Join(disk, "holders"), 0o755)
	for i, p := range []string{"sda1", "sda2"} {
		write(filepath.Join(disk, p, "dev"), "8:"+string(rune('1'+i))+"\n")
		write(filepath.Join(disk, p, "partition"), string(rune('1'+i))+"\n")
		os.MkdirAll(filepath.Join(disk, p, "holders"), 0o755)
	}
	if holder != "" {
		os.MkdirAll(filepath.Join(disk, "sda2", "holders", holder), 0o755)
	}
	os.MkdirAll(filepath.Join(root, "sys/dev/block"), 0o755)
	for dev, rel := range map[string]string{"8:0": "sda", "8:1": "sda/sda1", "8:2": "sda/sda2"} {
		if err := os.Symlink("../../devices/pci0/block/"+rel, filepath.Join(root, "sys/dev/block", dev)); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "mountinfo"), "22 1 254:0 / / rw - ext4 /dev/vda rw\n"+mounts)
	write(filepath.Join(root, "swaps"), "Filename Type Size Used Priority\n")
	return &Checker{Sysfs: filepath.Join(root, "sys"), Mountinfo: filepath.Join(root, "mountinfo"), Swaps: filepath.Join(root, "swaps")}
}

func TestCheckDevice(t *testing.T) {
	sda, sda1 := unix.Mkdev(8, 0), unix.Mkdev(8, 1)
	for _, tc := range []struct {
		name              string
		removable, mounts string
		holder            string
		dev               uint64
		force             bool
		want              string // "" for no error
	}{
		{"idle disk", "0", "", "", sda, false, ""},
		{"mounted partition", "0", "35 22 8:1 / /mnt rw - vfat /dev/sda1 rw\n", "", sda, false, "sda1 is mounted on /mnt"},
		{"partition, sibling mounted", "0", "35 22 8:2 / /boot rw - vfat /dev/sda2 rw\n", "", sda1, false, "sda2 is mounted on /boot"},
		{"whole disk mounted", "0", "35 22 8:0 / /data rw - ext4 /dev/sda rw\n", "", sda, false, "sda is mounted on /data"},
		{"held by dm", "0", "", "dm-0", sda, false, "sda2 is in use by dm-0"},
		{"removable", "1", "", "", sda, false, "removable media"},
		{"removable forced", "1", "", "", sda, true, ""},
		{"removable and mounted, forced", "1", "35 22 8:1 / /mnt rw - vfat /dev/sda1 rw\n", "", sda, true, "mounted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeSys(t, tc.removable, tc.mounts, tc.holder)
			err := c.CheckDevice(tc.dev, tc.force)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCheckDeviceRefusesBootMedium(t *testing.T) {
	// The disk node holds an MBR whose signature is 1a2b3c4d.
	mbr := make([]byte, 512)
	binary.LittleEndian.PutUint32(mbr[440:], 0x1a2b3c4d)
	mbr[510], mbr[511] = 0x55, 0xaa
	for _, tc := range []struct {
		name  string
		param string // flashline.bootmedia value; "" for none
		force bool
		want  string
	}{
		{"netbooted: no boot medium", "", false, ""},
		{"another stick booted us", "ptuuid:deadbeef", false, ""},
		{"this disk is the boot medium", "ptuuid:1a2b3c4d", false, "medium this agent booted from"},
		{"force does not override", "ptuuid:1a2b3c4d", true, "even with --force"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeSys(t, "0", "", "")
			c.Dev = t.TempDir()
			if err := os.WriteFile(filepath.Join(c.Dev, "sda"), mbr, 0o644); err != nil {
				t.Fatal(err)
			}
			cmdline := filepath.Join(t.TempDir(), "cmdline")
			line := "console=ttyS0 quiet"
			if tc.param != "" {
				line += " flashline.bootmedia=" + tc.param
			}
			os.WriteFile(cmdline, []byte(line+"\n"), 0o644)
			c.BootMedia = bootMediaFromCmdline(cmdline)
			err := c.CheckDevice(unix.Mkdev(8, 1), tc.force)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFileTarget(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "disk.img")
	os.WriteFile(p, bytes.Repeat([]byte{0xaa}, 3<<20), 0o644)
	tg, err := Open(p, Options{ImageSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if tg.Kind != File || !tg.ReadsZeros() || tg.Size() != 3<<20 || tg.Bounded() {
		t.Fatalf("kind %v zeros %v size %d", tg.Kind, tg.ReadsZeros(), tg.Size())
	}
	b := make([]byte, 3<<20)
	if _, err := tg.ReadAt(b, 0); err != nil || !bytes.Equal(b, make([]byte, 3<<20)) {
		t.Fatalf("old contents survive: %v", err)
	}
	buf := AlignedBuffer(1 << 20)
	for i := range buf {
		buf[i] = byte(i)
	}
	if _, err := tg.WriteAt(buf, 4<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.WriteAt(buf[:1000], 5<<20); err != nil { // unaligned: buffered path
		t.Fatal(err)
	}
	if err := tg.Sync(7 << 20); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Size() != 7<<20 {
		t.Errorf("size %d after Sync(7 MiB)", fi.Size())
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got[4<<20:5<<20], buf) || !bytes.Equal(got[5<<20:5<<20+1000], buf[:1000]) {
		t.Error("written data differs")
	}
	if err := tg.Wipe(4<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(p)
	if !bytes.Equal(got[4<<20:5<<20], make([]byte, 1<<20)) {
		t.Error("wipe left data")
	}
}

func TestNotATarget(t *testing.T) {
	if _, err := Open("/dev/null", Options{ImageSize: -1}); err == nil || !strings.Contains(err.Error(), "no such block device (it is a character device)") {
		t.Errorf("err %v", err)
	}
	if _, err := Open(t.TempDir(), Options{ImageSize: -1}); err == nil {
		t.Error("directory accepted")
	}
}

// gptImage writes a GPT disk image of size bytes with two partitions, the last ending at the
// image's last usable sector.
func gptImage(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(size)
	last := uint64(size/512) - 34
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: 4095, Type: gpt.EFISystemPartition, Name: "esp"},
		{Index: 2, Start: 4096, End: last, Type: gpt.LinuxFilesystem, Name: "root"},
	}}
	if err := tbl.Write(f, size); err != nil {
		t.Fatal(err)
	}
}

func TestFixGPT(t *testing.T) {
	for _, grow := range []bool{false, true} {
		dir := t.TempDir()
		img, disk := filepath.Join(dir, "img"), filepath.Join(dir, "disk")
		gptImage(t, img, 8<<20)
		data, _ := os.ReadFile(img)
		os.WriteFile(disk, nil, 0o644)
		os.Truncate(disk, 32<<20)
		tg, err := Open(disk, Options{ImageSize: -1, NoDirect: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tg.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		res, err := tg.FixGPT(grow)
		if err != nil {
			t.Fatal(err)
		}
		tg.Close()
		if !res.Moved || res.NewLast != 32<<20/512-34 || res.OldLast != 8<<20/512-34 {
			t.Errorf("grow %v: %+v", grow, res)
		}
		f, _ := os.Open(disk)
		tbl, err := gpt.Read(f, 512, 512)
		if err != nil {
			t.Fatal(err)
		}
		if err := tbl.Verify(f, 32<<20); err != nil {
			t.Errorf("grow %v: backup header not at the end: %v", grow, err)
		}
		sec := make([]byte, 512)
		f.ReadAt(sec, 32<<20-512)
		if string(sec[:8]) != "EFI PART" {
			t.Error("no backup header in the last sector")
		}
		f.ReadAt(sec, 8<<20-512)
		if string(sec[:8]) == "EFI PART" {
			t.Error("stale backup header left at the image's end")
		}
		wantEnd := uint64(8<<20/512 - 34)
		if grow {
			wantEnd = 32<<20/512 - 34
			if res.Grown != "root" {
				t.Errorf("grown %q", res.Grown)
			}
		}
		if p := tbl.Partitions[1]; p.End != wantEnd || p.Name != "root" || tbl.Partitions[0].End != 4095 {
			t.Errorf("grow %v: partitions %+v %+v", grow, tbl.Partitions[0], p)
		}
		f.Close()
	}
}

func TestFixGPTNoTable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	os.WriteFile(p, nil, 0o644)
	os.Truncate(p, 4<<20)
	tg, err := Open(p, Options{ImageSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if res, err := tg.FixGPT(true); err != nil || res.Moved {
		t.Errorf("%+v %v", res, err)
	}
}

// loopDevice attaches a file of size bytes to a loop device; it needs root and losetup,
// which CI (root on Debian) has.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup not installed")
	}
	f := filepath.Join(t.TempDir(), "backing")
	os.WriteFile(f, nil, 0o644)
	os.Truncate(f, size)
	out, err := exec.Command("losetup", "--find", "--show", f).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device available: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func TestLoopTooSmall(t *testing.T) {
	dev := loopDevice(t, 4<<20)
	_, err := Open(dev, Options{ImageSize: 5 << 20})
	if err == nil || !strings.Contains(err.Error(), "smaller than the image: 4194304 < 5242880") {
		t.Fatalf("err %v", err)
	}
	tg, err := Open(dev, Options{ImageSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if tg.Kind != BlockDevice || tg.Size() != 4<<20 || !tg.Bounded() {
		t.Errorf("kind %v size %d", tg.Kind, tg.Size())
	}
	if _, err := tg.WriteAt(AlignedBuffer(1<<20), 4<<20); err == nil {
		t.Error("write past the end accepted")
	}
	// The backing file is also protected while attached.
	var backing string
	out, _ := exec.Command("losetup", "-n", "-O", "BACK-FILE", dev).Output()
	backing = strings.TrimSpace(string(out))
	if _, err := Open(backing, Options{ImageSize: -1}); err == nil || !strings.Contains(err.Error(), "backing file of "+dev) {
		t.Errorf("backing file: err %v", err)
	}
}

func TestLoopMounted(t *testing.T) {
	dev := loopDevice(t, 16<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4: %v %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	_, err := Open(dev, Options{ImageSize: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "is mounted on "+mnt) {
		t.Fatalf("err %v", err)
	}
}

func TestRereadPartitionsFile(t *testing.T) {
	if err := RereadPartitions(t.Context(), "target_test.go"); err != nil {
		t.Error(err)
	}
}

func TestLoopZeroRange(t *testing.T) {
	dev := loopDevice(t, 4<<20)
	tg, err := Open(dev, Options{ImageSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	buf := AlignedBuffer(1 << 20)
	for i := range buf {
		buf[i] = 0xff
	}
	for off := int64(0); off < 4<<20; off += 1 << 20 {
		if _, err := tg.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if !tg.checker.writeZeroesOffload(tg.rdev) {
		t.Skip("this loop device does not advertise write-zeroes")
	}
	if !tg.ZeroRange(0, 3<<20+100) || !tg.ReadsZeros() {
		t.Fatal("ZeroRange failed on a device with write-zeroes offload")
	}
	got := AlignedBuffer(4 << 20)
	if _, err := tg.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:3<<20+512], make([]byte, 3<<20+512)) || got[3<<20+512] != 0xff {
		t.Error("range not zeroed exactly (to the sector)")
	}
}

// tmpfs refuses O_DIRECT at open before Linux 6.6 (and accepts it since): either way the
// target must work, through the page cache when O_DIRECT is refused.
func TestTmpfsTarget(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "flashtest")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(dir)
	// This tests O_DIRECT on tmpfs, not the /dev rule (which refuses files under /dev/shm).
	c := LiveChecker()
	c.Dev = ""
	tg, err := Open(filepath.Join(dir, "disk"), Options{ImageSize: -1, Checker: c})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	buf := AlignedBuffer(1 << 20)
	buf[0] = 7
	if _, err := tg.WriteAt(buf, 1<<20); err != nil {
		t.Fatal(err)
	}
	t.Logf("O_DIRECT in use: %v", tg.Direct())
	got := make([]byte, 1)
	if _, err := tg.ReadAt(got, 1<<20); err != nil || got[0] != 7 {
		t.Errorf("read back %v %v", got, err)
	}
}
