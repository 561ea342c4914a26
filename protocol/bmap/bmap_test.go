package bmap

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// image returns a raw image of blocks 4 KiB blocks where the blocks in data hold random
// bytes and the rest are zeros, written sparse (holes for zero blocks) or dense.
func image(t *testing.T, size int64, data []int64, sparse bool) (string, []byte) {
	t.Helper()
	img := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for _, b := range data {
		for i := b * 4096; i < min((b+1)*4096, size); i++ {
			img[i] = byte(r.Uint32() | 1)
		}
	}
	p := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; off += 4096 {
		blk := img[off:min(off+4096, size)]
		if sparse && bytes.Count(blk, []byte{0}) == len(blk) {
			continue
		}
		if _, err := f.WriteAt(blk, off); err != nil {
			t.Fatal(err)
		}
	}
	return p, img
}

func TestCreateParseRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		size       int64
		data       []int64
		wantRanges string
	}{
		{"runs and singles", 40 * 4096, []int64{0, 1, 2, 7, 20, 21, 39}, "0-2,7,20-21,39"},
		{"partial last block", 10*4096 + 100, []int64{3, 10}, "3,10"},
		{"nothing mapped", 8 * 4096, nil, ""},
		{"everything", 4 * 4096, []int64{0, 1, 2, 3}, "0-3"},
	}
	for _, tt := range tests {
		for _, sparse := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s sparse=%v", tt.name, sparse), func(t *testing.T) {
				p, img := image(t, tt.size, tt.data, sparse)
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				m, err := Create(f, 0)
				if err != nil {
					t.Fatal(err)
				}
				var spans []string
				for _, r := range m.Ranges {
					s := fmt.Sprint(r.First)
					if r.Last != r.First {
						s += fmt.Sprintf("-%d", r.Last)
					}
					spans = append(spans, s)
					off, end := m.Bytes(r)
					if sha256.Sum256(img[off:end]) != r.SHA256 {
						t.Errorf("range %s: wrong checksum", s)
					}
				}
				if got := strings.Join(spans, ","); got != tt.wantRanges {
					t.Errorf("ranges %q, want %q", got, tt.wantRanges)
				}
				back, err := Parse(m.Marshal())
				if err != nil {
					t.Fatalf("Parse(Marshal): %v\n%s", err, m.Marshal())
				}
				if back.ImageSize != tt.size || back.MappedBlocks != int64(len(tt.data)) || len(back.Ranges) != len(m.Ranges) {
					t.Errorf("parsed back %+v", back)
				}
				for i := range back.Ranges {
					if back.Ranges[i] != m.Ranges[i] {
						t.Errorf("range %d: %+v != %+v", i, back.Ranges[i], m.Ranges[i])
					}
				}
				// The checker passes the image and stops at a range whose bytes changed.
				c := NewChecker(back)
				for off := 0; off < len(img); off += 3000 {
					if err := c.Write(img[off:min(off+3000, len(img))]); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// sample is a hand-written map in bmaptool's layout (spaces around the values, a comment,
// a checksum written later).
func sample(mutate func(string) string) []byte {
	body := `<?xml version="1.0" ?>
<!-- a comment, as bmaptool writes -->
<bmap version="2.0">
    <ImageSize> 20000 </ImageSize>
    <BlockSize> 4096 </BlockSize>
    <BlocksCount> 5 </BlocksCount>
    <MappedBlocksCount> 3 </MappedBlocksCount>
    <ChecksumType> sha256 </ChecksumType>
    <BmapFileChecksum> FILESUM </BmapFileChecksum>
    <BlockMap>
        <Range chksum="` + strings.Repeat("ab", 32) + `"> 0-1 </Range>
        <Range chksum="` + strings.Repeat("cd", 32) + `"> 4 </Range>
    </BlockMap>
</bmap>
`
	if mutate != nil {
		body = mutate(body)
	}
	zero := strings.Replace(body, "FILESUM", strings.Repeat("0", 64), 1)
	sum := sha256.Sum256([]byte(zero))
	return []byte(strings.Replace(body, "FILESUM", fmt.Sprintf("%x", sum), 1))
}

func TestParse(t *testing.T) {
	m, err := Parse(sample(nil))
	if err != nil {
		t.Fatal(err)
	}
	if m.ImageSize != 20000 || len(m.Ranges) != 2 || m.Ranges[1].First != 4 || m.Ranges[1].Last != 4 || m.MappedBytes() != 8192+(20000-4*4096) {
		t.Errorf("map %+v, mapped %d", m, m.MappedBytes())
	}
	bad := []struct {
		name, from, to, want string
	}{
		{"overlap", "> 4 <", "> 1-4 <", "overlaps"},
		{"out of order", "> 0-1 <", "> 4 <", "overlaps or comes before"},
		{"outside the image", "> 4 <", "> 5 <", "outside the image"},
		{"blocks count", "<BlocksCount> 5 ", "<BlocksCount> 6 ", "BlocksCount 6"},
		{"mapped count", "<MappedBlocksCount> 3 ", "<MappedBlocksCount> 4 ", "MappedBlocksCount 4"},
		{"sha1", "sha256 </Checksum", "sha1 </Checksum", `checksum type "sha1"`},
		{"version 1", `version="2.0"`, `version="1.4"`, "SHA-1"},
		{"short checksum", strings.Repeat("cd", 32), "cdcd", "not a SHA-256"},
		{"bad range", "> 4 <", "> 4-x <", "FIRST-LAST"},
		{"reversed range", "> 0-1 <", "> 1-0 <", "FIRST <= LAST"},
		{"block size", "<BlockSize> 4096 ", "<BlockSize> 4000 ", "power of two"},
		{"negative size", "<ImageSize> 20000 ", "<ImageSize> -1 ", "ImageSize"},
		{"not xml", "<bmap", "<bmap<", "XML"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(sample(func(s string) string { return strings.Replace(s, tt.from, tt.to, 1) }))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// A changed file fails its own checksum.
	b := sample(nil)
	b = bytes.Replace(b, []byte("> 4 <"), []byte("> 3 <"), 1)
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "BmapFileChecksum mismatch") {
		t.Errorf("tampered file: %v", err)
	}
}

func TestCheckerStopsAtTheRange(t *testing.T) {
	img := make([]byte, 5*4096)
	for i := range img {
		img[i] = byte(i)
	}
	m := &Map{ImageSize: int64(len(img)), BlockSize: 4096, BlocksCount: 5}
	for _, r := range [][2]int64{{0, 0}, {2, 3}} {
		m.Ranges = append(m.Ranges, Range{First: r[0], Last: r[1], SHA256: sha256.Sum256(img[r[0]*4096 : (r[1]+1)*4096])})
	}
	bad := bytes.Clone(img)
	bad[3*4096+5] ^= 1 // in range 2
	bad[1*4096] ^= 1   // unmapped: does not matter
	c := NewChecker(m)
	var failedAt int
	for off := 0; off < len(bad); off += 4096 {
		if err := c.Write(bad[off : off+4096]); err != nil {
			failedAt = off / 4096
			if !strings.Contains(err.Error(), "range 2 (blocks 2-3") {
				t.Errorf("err = %v", err)
			}
			break
		}
	}
	if failedAt != 3 {
		t.Errorf("failed at block %d, want 3 (the range's last block)", failedAt)
	}
	short := NewChecker(m)
	if err := short.Write(img[:4096]); err != nil {
		t.Fatal(err)
	}
	if err := short.Close(); err == nil {
		t.Error("a short image passed")
	}
	if err := NewChecker(m).Write(make([]byte, len(img)+1)); err == nil {
		t.Error("a long image passed")
	}
}

func TestSpans(t *testing.T) {
	m := &Map{ImageSize: 10*4096 + 10, BlockSize: 4096, BlocksCount: 11, Ranges: []Range{{First: 1, Last: 2}, {First: 5, Last: 5}, {First: 10, Last: 10}}}
	var got []string
	err := m.Spans(4096+100, 9*4096, func(off, n int64) error {
		got = append(got, fmt.Sprintf("%d+%d", off, n))
		return nil
	})
	want := "4196+8092,20480+4096,40960+10"
	if err != nil || strings.Join(got, ",") != want {
		t.Errorf("spans %v, want %s", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample(nil))
	f.Add(sample(func(s string) string { return strings.Replace(s, "> 4 <", "> 1-4 <", 1) }))
	f.Add([]byte(`<bmap version="2.0"><ImageSize>1</ImageSize></bmap>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		var mapped int64
		for i, r := range m.Ranges {
			if r.First > r.Last || r.Last >= m.BlocksCount || (i > 0 && r.First <= m.Ranges[i-1].Last) {
				t.Fatalf("accepted a bad range %d: %+v", i, r)
			}
			mapped += r.Last - r.First + 1
		}
		if mapped != m.MappedBlocks || m.MappedBytes() > m.ImageSize {
			t.Fatalf("accepted inconsistent counts: %+v", m)
		}
		if _, err := Parse(m.Marshal()); err != nil {
			t.Fatalf("Marshal of an accepted map does not parse: %v", err)
		}
	})
}
