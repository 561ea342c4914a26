package xzblock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

func testInput(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		// Compressible but not trivial: runs of zeros and random text.
		if (i/4096)%3 == 0 {
			continue
		}
		b[i] = byte('a' + r.IntN(8))
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		block int
	}{
		{"empty", 0, 64 << 10},
		{"one byte", 1, 64 << 10},
		{"exact blocks", 256 << 10, 64 << 10},
		{"partial last block", 300<<10 + 7, 64 << 10},
		{"one block", 100 << 10, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(tc.size)
			var out bytes.Buffer
			if err := Compress(context.Background(), &out, bytes.NewReader(in), Options{BlockSize: tc.block, Workers: 3}); err != nil {
				t.Fatal(err)
			}
			xr, err := xz.NewReader(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(xr)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if sha256.Sum256(got) != sha256.Sum256(in) {
				t.Fatalf("round trip differs: got %d bytes, want %d", len(got), len(in))
			}
		})
	}
}

// TestXZToolSeesBlockSizes checks with the reference implementation that the file is valid
// and that every block header carries its sizes, which parallel decoders rely on.
func TestXZToolSeesBlockSizes(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz tool not installed")
	}
	in := testInput(1<<20 + 5)
	var out bytes.Buffer
	if err := Compress(context.Background(), &out, bytes.NewReader(in), Options{BlockSize: 256 << 10}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "t.xz")
	if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("xz", "--robot", "-lvv", file).CombinedOutput()
	if err != nil {
		t.Fatalf("xz -lvv: %v: %s", err, list)
	}
	blocks := 0
	for _, line := range strings.Split(string(list), "\n") {
		f := strings.Split(line, "\t")
		if f[0] != "block" {
			continue
		}
		blocks++
		// Robot format, -vv: field 11 is the header size, 12 the flags ("cu" when both
		// sizes are in the header).
		if len(f) < 13 || f[12] != "cu" {
			t.Errorf("block line without both sizes in its header: %q", line)
		}
	}
	if blocks != 5 {
		t.Errorf("xz lists %d blocks, want 5:\n%s", blocks, list)
	}
	cmd := exec.Command("xz", "-dc")
	cmd.Stdin = bytes.NewReader(out.Bytes())
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz -dc: %v", err)
	}
	if !bytes.Equal(got, in) {
		t.Fatal("xz -dc output differs from the input")
	}
}
