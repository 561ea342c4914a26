package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/flashline/flashline/protocol/bmap"
)

// mapImage builds the bmap of img as flashline-bmap would (zero blocks unmapped).
func mapImage(t *testing.T, img []byte) *bmap.Map {
	t.Helper()
	f, err := os.Open(writeFile(t, "img", img))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := bmap.Create(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteBmap(t *testing.T) {
	img := testImage(6<<20, 11)
	m := mapImage(t, img)
	if m.MappedBytes() >= int64(len(img)) {
		t.Fatalf("test image has no unmapped blocks")
	}
	for _, format := range []string{"raw", "zstd"} {
		for _, verify := range []bool{false, true} {
			t.Run(format, func(t *testing.T) {
				// The target holds garbage: unmapped blocks keep it (they are free space),
				// mapped blocks must hold the image.
				dst := writeFile(t, "disk", bytes.Repeat([]byte{0xee}, len(img)))
				bmapFile := writeFile(t, "img.bmap", m.Marshal())
				loaded, err := LoadBmap(context.Background(), bmapFile, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				res, err := Write(context.Background(), Options{Source: writeFile(t, "img", compress(t, format, img)), Target: dst,
					Bmap: loaded, VerifyReadback: verify, NoZeroSkip: true})
				if err != nil {
					t.Fatal(err)
				}
				got := readFile(t, dst)
				for _, r := range m.Ranges {
					off, end := m.Bytes(r)
					if !bytes.Equal(got[off:end], img[off:end]) {
						t.Fatalf("range %d-%d not written", r.First, r.Last)
					}
				}
				if res.Unmapped != int64(len(img))-m.MappedBytes() || res.Bytes != int64(len(img)) || res.SHA256 != "" {
					t.Errorf("result %+v, mapped %d", res, m.MappedBytes())
				}
				// A file target starts empty (a hole): the unmapped blocks past the first
				// MiB were never written, so the file holds no more than the mapped bytes
				// and the first MiB.
				var st syscall.Stat_t
				if err := syscall.Stat(dst, &st); err != nil {
					t.Fatal(err)
				}
				if limit := m.MappedBytes() + HoldBack + 64<<10; st.Blocks*512 > limit {
					t.Errorf("target has %d bytes allocated, more than the %d mapped (+ first MiB)", st.Blocks*512, m.MappedBytes())
				}
			})
		}
	}
}

func TestWriteBmapFailures(t *testing.T) {
	img := testImage(4<<20, 12)
	m := mapImage(t, img)
	flipped := bytes.Clone(img)
	// A byte in a mapped range past the first MiB.
	var at int64 = -1
	for _, r := range m.Ranges {
		if off, end := m.Bytes(r); end > HoldBack+100 {
			at = max(off, HoldBack+100)
			break
		}
	}
	if at < 0 {
		t.Fatal("no mapped range past 2 MiB")
	}
	flipped[at] ^= 1
	unmapped := bytes.Clone(img)
	for off := int64(HoldBack); off < int64(len(img)); off += 4096 {
		inRange := false
		m.Spans(off, 1, func(int64, int64) error { inRange = true; return nil })
		if !inRange {
			unmapped[off] = 0x55 // free space: must not matter
			break
		}
	}
	other := *m
	other.ImageSize++
	for _, tc := range []struct {
		name      string
		src       []byte
		m         *bmap.Map
		opts      Options
		want      string
		untouched bool
		ok        bool
	}{
		{"changed mapped byte fails at its range", flipped, m, Options{}, "flash: bmap range", false, false},
		{"changed unmapped byte is fine", unmapped, m, Options{}, "", false, true},
		{"short raw image: refused up front", img[:3<<20], m, Options{}, "source is 3145728 bytes, its bmap says 4194304", true, false},
		{"short compressed image", compress(t, "zstd", img[:3<<20]), m, Options{}, "ended after 3145728 bytes", false, false},
		{"long compressed image", compress(t, "zstd", append(bytes.Clone(img), 1)), m, Options{}, "longer than", false, false},
		{"raw source of the wrong size", img, &other, Options{}, "its bmap says", true, false},
		{"size flag disagrees", img, m, Options{Size: 1 << 20}, "the bmap is for a 4194304-byte image", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := bytes.Repeat([]byte{0xee}, 5<<20)
			dst := writeFile(t, "disk", orig)
			opts := tc.opts
			opts.Source, opts.Target, opts.Bmap = writeFile(t, "img", tc.src), dst, tc.m
			_, err := Write(context.Background(), opts)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			got := readFile(t, dst)
			if tc.untouched && !bytes.Equal(got, orig) {
				t.Error("target modified although the flash was refused up front")
			}
			if !tc.untouched && !bytes.Equal(got[:HoldBack], make([]byte, HoldBack)) {
				t.Error("first MiB not wiped after a failure")
			}
		})
	}
}

func TestLoadBmapHash(t *testing.T) {
	img := testImage(2<<20, 13)
	data := mapImage(t, img).Marshal()
	p := filepath.Join(t.TempDir(), "x.bmap")
	os.WriteFile(p, data, 0o644)
	good := sha256.Sum256(data)
	if _, err := LoadBmap(context.Background(), p, strings.ToUpper(string(hexOf(good[:]))), nil); err != nil {
		t.Errorf("right hash: %v", err)
	}
	if _, err := LoadBmap(context.Background(), p, strings.Repeat("ab", 32), nil); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("wrong hash: %v", err)
	}
	os.WriteFile(p, []byte("<bmap version='2.0'></bmap>"), 0o644)
	if _, err := LoadBmap(context.Background(), p, "", nil); err == nil || !strings.Contains(err.Error(), "invalid bmap") {
		t.Errorf("bad bmap: %v", err)
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}
