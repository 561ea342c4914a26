package bootmedia

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/flashline/flashline/initramfs/diskimage"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"ptuuid:1A2B3C4D", "1a2b3c4d", true},
		{"PTUUID:6F1E2D3C-0000-4000-8000-000000000001", "6f1e2d3c-0000-4000-8000-000000000001", true},
		{"ptuuid:1a2b3c4", "", false},
		{"ptuuid:zzzzzzzz", "", false},
		{"label:FLASHLINE", "", false},
		{"ptuuid:{6f1e2d3c-0000-4000-8000-000000000001}", "", false},
		{"", "", false},
	} {
		id, err := Parse(tc.in)
		if (err == nil) != tc.ok || id.PTUUID != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q ok=%v", tc.in, id.PTUUID, err, tc.want, tc.ok)
		}
	}
}

// TestImages checks PTUUID against images built by initramfs/diskimage (which blkid reads
// the same way: checked by hand with blkid on this machine).
func TestImages(t *testing.T) {
	if _, err := os.Stat(diskimage.DebianLoaders().SyslinuxEFI); err != nil {
		t.Skip("syslinux packages missing")
	}
	dir := t.TempDir()
	k := filepath.Join(dir, "k")
	os.WriteFile(k, bytes.Repeat([]byte{1}, 1<<20), 0o644)
	for _, tc := range []struct {
		table diskimage.Table
		id    string
	}{
		{diskimage.MBR, "1a2b3c4d"},
		{diskimage.GPT, "6f1e2d3c-0000-4000-8000-000000000001"},
	} {
		out := filepath.Join(dir, string(tc.table)+".img")
		res, err := diskimage.WriteDisk(context.Background(), out, diskimage.Boot{Kernel: k, Initrd: k, MarkMedia: true, DiskID: tc.id}, diskimage.DiskOptions{Table: tc.table})
		if err != nil {
			t.Skipf("cannot build images here: %v", err)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		id, err := Parse("ptuuid:" + res.DiskID)
		if err != nil {
			t.Fatal(err)
		}
		is, err := id.Is(f)
		f.Close()
		if err != nil || !is {
			t.Errorf("%s image not recognised as its own boot medium (%v)", tc.table, err)
		}
		other, _ := Parse("ptuuid:deadbeef")
		f, _ = os.Open(out)
		if is, _ := other.Is(f); is {
			t.Errorf("%s image matches another id", tc.table)
		}
		f.Close()
	}
}

func TestPTUUIDBlank(t *testing.T) {
	got, err := PTUUID(bytes.NewReader(make([]byte, 8192)))
	if err != nil || got != "" {
		t.Errorf("blank disk: %q, %v", got, err)
	}
	if _, err := PTUUID(bytes.NewReader(make([]byte, 100))); err == nil {
		t.Error("short disk: no error")
	}
}

func FuzzPTUUID(f *testing.F) {
	seed := make([]byte, 1024)
	seed[510], seed[511] = 0x55, 0xaa
	seed[446+4] = 0xee
	copy(seed[512:], "EFI PART")
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := PTUUID(bytes.NewReader(b))
		if err != nil {
			return
		}
		if id != "" {
			if _, err := Parse("ptuuid:" + id); err != nil {
				t.Fatalf("PTUUID %q does not parse back: %v", id, err)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add("ptuuid:1a2b3c4d")
	f.Add("ptuuid:6f1e2d3c-0000-4000-8000-000000000001")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse("ptuuid:" + id.PTUUID)
		if err != nil || again != id {
			t.Fatalf("%q -> %q does not round-trip", s, id.PTUUID)
		}
	})
}
