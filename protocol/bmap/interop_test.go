package bmap

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBmaptoolInterop checks both ways against bmaptool itself (Debian's bmap-tools), when
// it is installed: its maps parse here, and it checks and copies with ours.
func TestBmaptoolInterop(t *testing.T) {
	if _, err := exec.LookPath("bmaptool"); err != nil {
		t.Skip("bmaptool not installed (apt-get install bmap-tools)")
	}
	p, img := image(t, 300*4096+123, []int64{0, 1, 5, 6, 7, 100, 300}, true)
	theirs := filepath.Join(t.TempDir(), "theirs.bmap")
	if out, err := exec.Command("bmaptool", "create", "-o", theirs, p).CombinedOutput(); err != nil {
		t.Fatalf("bmaptool create: %v\n%s", err, out)
	}
	data, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatalf("bmaptool's map does not parse: %v\n%s", err, data)
	}
	c := NewChecker(m)
	if err := c.Write(img); err != nil || c.Close() != nil {
		t.Fatalf("the image fails bmaptool's own map: %v", err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ours, err := Create(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	bp := filepath.Join(t.TempDir(), "ours.bmap")
	if err := os.WriteFile(bp, ours.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("bmaptool", "copy", "--bmap", bp, p, dst).CombinedOutput(); err != nil {
		t.Fatalf("bmaptool copy with our map: %v\n%s", err, out)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(img) {
		t.Error("bmaptool's copy with our map differs from the image")
	}
}
