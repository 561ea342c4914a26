package decompress

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// testdata/*.xz were made by the xz tool from one 400000-byte image (see testdata/README):
// multi-block files with sizes in the headers (xz -T2 --block-size), a single-block file
// without them (xz -T1), every check type, concatenated streams with padding, empty input.
const testdataSHA = "71d3a258075d998637c4856e09e3ee9a1a520473bc35cb8033f1b7a6d1e4f4b0"

// image returns n bytes of mixed compressibility: text, zero runs and random data.
func image(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n)
	for len(b) < n {
		k := min(n-len(b), 1000+r.IntN(200000))
		switch r.IntN(3) {
		case 0:
			b = append(b, make([]byte, k)...)
		case 1:
			for range k {
				b = append(b, byte(r.Uint32()))
			}
		default:
			for len(b) < cap(b) && k > 0 {
				s := "block device image pipeline "
				s = s[:min(len(s), k)]
				b = append(b, s...)
				k -= len(s)
			}
		}
	}
	return b
}

func gz(t testing.TB, members ...[]byte) []byte {
	var buf bytes.Buffer
	for _, m := range members {
		w := gzip.NewWriter(&buf)
		w.Write(m)
		w.Close()
	}
	return buf.Bytes()
}

func zst(t testing.TB, frames ...[]byte) []byte {
	var buf bytes.Buffer
	for _, f := range frames {
		w, err := zstd.NewWriter(&buf, zstd.WithEncoderCRC(true))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f)
		w.Close()
	}
	return buf.Bytes()
}

func goXZ(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	w, err := xz.WriterConfig{BlockSize: 50000, DictCap: 1 << 16}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

func decodeAll(t testing.TB, in []byte, workers int) ([]byte, Format, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(in), Options{Concurrency: workers})
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	done := make(chan struct{})
	var out []byte
	go func() {
		out, err = io.ReadAll(r)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("decoder hung")
	}
	return out, r.Format, err
}

func TestFormats(t *testing.T) {
	img := image(300000, 1)
	img2 := image(100000, 2)
	both := append(append([]byte{}, img...), img2...)
	for _, tc := range []struct {
		name   string
		in     []byte
		want   []byte
		format Format
	}{
		{"raw", img, img, Raw},
		{"raw tiny", []byte{1, 2}, []byte{1, 2}, Raw},
		{"raw empty", nil, nil, Raw},
		{"gzip", gz(t, img), img, Gzip},
		{"gzip members", gz(t, img, img2), both, Gzip},
		{"zstd", zst(t, img), img, Zstd},
		{"zstd frames", zst(t, img, img2), both, Zstd},
		{"xz go writer", goXZ(t, img), img, Xz},
		{"xz streams", append(goXZ(t, img), goXZ(t, img2)...), both, Xz},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, f, err := decodeAll(t, tc.in, 2)
			if err != nil {
				t.Fatal(err)
			}
			if f != tc.format {
				t.Errorf("format %s, want %s", f, tc.format)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("output differs: %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}

// TestXZFiles decodes files made by the C xz tool and cross-checks with ulikunitz's
// sequential reader.
func TestXZFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.xz")
	if len(files) < 7 {
		t.Fatalf("testdata missing: %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := xz.NewReader(bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			want, err := io.ReadAll(ref)
			if err != nil {
				t.Fatal(err)
			}
			for _, workers := range []int{1, 3} {
				got, _, err := decodeAll(t, in, workers)
				if err != nil {
					t.Fatalf("workers %d: %v", workers, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("workers %d: output differs from ulikunitz/xz", workers)
				}
			}
			if s := sha256.Sum256(want); len(want) == 400000 && hex.EncodeToString(s[:]) != testdataSHA {
				t.Errorf("sha256 %x", s)
			}
		})
	}
}

// Every cut of a compressed stream must be an error, never a shorter clean image.
func TestTruncated(t *testing.T) {
	img := image(200000, 3)
	multi, _ := os.ReadFile("testdata/multi.xz")
	single, _ := os.ReadFile("testdata/single.xz")
	for name, in := range map[string][]byte{
		"gzip": gz(t, img), "zstd": zst(t, img), "xz": goXZ(t, img),
		"xz multi": multi, "xz single": single,
	} {
		t.Run(name, func(t *testing.T) {
			cuts := []int{len(in) - 1, len(in) - 4, len(in) - 13, len(in) / 2, 40, 13}
			for range 5 {
				cuts = append(cuts, 12+rand.IntN(len(in)-13))
			}
			for _, cut := range cuts {
				// One worker streams xz blocks from the input, two buffer them.
				for _, workers := range []int{1, 2} {
					_, _, err := decodeAll(t, in[:cut], workers)
					if err == nil {
						t.Fatalf("cut at %d of %d, %d workers: no error", cut, len(in), workers)
					}
				}
			}
		})
	}
}

// A flipped byte must be detected by the format's own check.
func TestCorrupt(t *testing.T) {
	img := image(200000, 4)
	multi, _ := os.ReadFile("testdata/multi.xz")
	for name, in := range map[string][]byte{
		"gzip": gz(t, img), "zstd": zst(t, img), "xz": goXZ(t, img), "xz multi": multi,
	} {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 5))
			for range 8 {
				bad := append([]byte{}, in...)
				i := 20 + r.IntN(len(bad)-40)
				bad[i] ^= 0x10
				got, _, err := decodeAll(t, bad, 1+r.IntN(2))
				if err == nil && !bytes.Equal(got, img) && name != "xz multi" {
					t.Fatalf("flip at %d: decoded %d wrong bytes without error", i, len(got))
				}
				if name == "xz multi" && err == nil {
					if s := sha256.Sum256(got); hex.EncodeToString(s[:]) != testdataSHA {
						t.Fatalf("flip at %d: wrong output without error", i)
					}
				}
			}
		})
	}
}

func TestTrailingGarbage(t *testing.T) {
	img := image(100000, 6)
	multi, _ := os.ReadFile("testdata/multi.xz")
	for name, in := range map[string][]byte{
		"gzip": gz(t, img), "zstd": zst(t, img), "xz": goXZ(t, img), "xz multi": multi,
	} {
		bad := append(append([]byte{}, in...), []byte("garbage!")...)
		if _, _, err := decodeAll(t, bad, 2); err == nil {
			t.Errorf("%s: trailing garbage accepted", name)
		}
	}
}

func TestXZErrorsNamed(t *testing.T) {
	multi, _ := os.ReadFile("testdata/multi.xz")
	_, _, err := decodeAll(t, multi[:len(multi)/2], 2)
	if err == nil || !strings.HasPrefix(err.Error(), "xz:") || strings.Contains(err.Error(), "xz: xz:") {
		t.Errorf("error %v", err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncation is not io.ErrUnexpectedEOF: %v", err)
	}
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want Format
	}{
		{[]byte{0x1f, 0x8b, 0x08, 0, 0, 0}, Gzip},
		{[]byte{0x1f, 0x8b}, Raw},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, Zstd},
		{[]byte{0x50, 0x2a, 0x4d, 0x18, 0, 0}, Zstd},
		{[]byte{0x5f, 0x2a, 0x4d, 0x18}, Zstd},
		{[]byte{0x60, 0x2a, 0x4d, 0x18}, Raw},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, Xz},
		{[]byte{0xfd, '7', 'z', 'X', 'Z'}, Raw},
		{[]byte{0xeb, 0x63, 0x90}, Raw}, // an MBR boot sector
		{nil, Raw},
	} {
		if got := Sniff(tc.head); got != tc.want {
			t.Errorf("Sniff(% x) = %s, want %s", tc.head, got, tc.want)
		}
	}
}

func FuzzSniff(f *testing.F) {
	f.Add([]byte{0x1f, 0x8b, 0x08})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0})
	f.Fuzz(func(t *testing.T, head []byte) {
		got := Sniff(head)
		// Sniffing must only depend on the first SniffLen bytes.
		if len(head) > SniffLen && Sniff(head[:SniffLen]) != got {
			t.Fatalf("Sniff depends on bytes past SniffLen")
		}
		// A raw verdict must survive the decoder: raw images come back unchanged.
		if got == Raw {
			out, f, err := decodeAll(t, head, 1)
			if err != nil || f != Raw || !bytes.Equal(out, head) {
				t.Fatalf("raw round trip: %v %s", err, f)
			}
		}
	})
}

// FuzzXZ compares the block-parallel decoder with ulikunitz's sequential one: on any input
// ours must not hang or panic, and must never return data the reference rejects, nor
// different data.
func FuzzXZ(f *testing.F) {
	for _, name := range []string{"multi.xz", "single.xz", "crc32.xz", "empty.xz"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err == nil && len(b) < 60000 {
			f.Add(b)
		}
	}
	f.Add(goXZ(f, image(20000, 9)))
	small := make([]byte, 0)
	for _, b := range [][]byte{goXZ(f, []byte("hello")), goXZ(f, image(70000, 10))} {
		small = append(small, b...)
	}
	f.Add(small)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 6 || Sniff(in) != Xz {
			return
		}
		got, _, err := decodeAll(t, in, 2)
		ref, rerr := xz.NewReader(bytes.NewReader(in))
		var want []byte
		if rerr == nil {
			want, rerr = io.ReadAll(ref)
		}
		if err == nil && rerr != nil {
			t.Fatalf("accepted input the reference rejects (%v)", rerr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("output differs from the reference")
		}
	})
}

func FuzzXZVarint(f *testing.F) {
	f.Add([]byte{0x80, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, p []byte) {
		v, rest, err := xzVarint(p)
		if err != nil {
			return
		}
		if v < 0 || len(rest) >= len(p) {
			t.Fatalf("v=%d rest=%d", v, len(rest))
		}
		// Re-encode: the minimal encoding must be exactly what was consumed.
		var enc []byte
		u := uint64(v)
		for u >= 0x80 {
			enc = append(enc, byte(u)|0x80)
			u >>= 7
		}
		enc = append(enc, byte(u))
		if !bytes.Equal(enc, p[:len(p)-len(rest)]) {
			t.Fatalf("non-canonical encoding accepted: % x", p[:len(p)-len(rest)])
		}
	})
}

// A worker's LZMA2 decoder carries over from block to block, trusting each block header's
// uncompressed size to find the block's end; a header that lies, or a block that does not
// reset the dictionary, must be an error and never shift data between blocks.
func TestXZBlockHeaderLies(t *testing.T) {
	multi, err := os.ReadFile("testdata/multi.xz")
	if err != nil {
		t.Fatal(err)
	}
	// The first block header starts right after the 12-byte stream header.
	const at = 12
	hsize := (int(multi[at]) + 1) * 4
	uvarint := func(b []byte) (uint64, int) {
		var v uint64
		for i := 0; i < len(b); i++ {
			v |= uint64(b[i]&0x7f) << (7 * i)
			if b[i]&0x80 == 0 {
				return v, i + 1
			}
		}
		t.Fatal("bad varint")
		return 0, 0
	}
	putUvarint := func(v uint64) []byte {
		var out []byte
		for v >= 0x80 {
			out = append(out, byte(v)|0x80)
			v >>= 7
		}
		return append(out, byte(v))
	}
	if multi[at+1]&0xc0 != 0xc0 {
		t.Fatal("testdata/multi.xz: first block header lacks sizes")
	}
	_, n1 := uvarint(multi[at+2:])
	uncomp, n2 := uvarint(multi[at+2+n1:])
	withUncompressed := func(v uint64) []byte {
		enc := putUvarint(v)
		if len(enc) != n2 {
			t.Fatalf("varint length changes for %d", v)
		}
		bad := append([]byte{}, multi...)
		copy(bad[at+2+n1:], enc)
		binary.LittleEndian.PutUint32(bad[at+hsize-4:], crc32.ChecksumIEEE(bad[at:at+hsize-4]))
		return bad
	}
	noReset := append([]byte{}, multi...)
	if c := noReset[at+hsize]; c != 0x01 && c < 0xe0 {
		t.Fatalf("first chunk control %#x is no dictionary reset", c)
	}
	noReset[at+hsize] = 0x80 // LZMA chunk without any reset
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"size one too large", withUncompressed(uncomp + 1), "its header says"},
		{"size one too small", withUncompressed(uncomp - 1), "its header says"},
		{"no dictionary reset", noReset, "dictionary reset"},
	} {
		for _, workers := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, workers), func(t *testing.T) {
				got, _, err := decodeAll(t, tc.in, workers)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %d bytes, error %v; want an error saying %q", len(got), err, tc.want)
				}
			})
		}
	}
}

// lzma2Size reads chunk headers of untrusted blocks: it must never panic or read past data.
func FuzzLZMA2Size(f *testing.F) {
	multi, _ := os.ReadFile("testdata/multi.xz")
	if len(multi) > 200 {
		hsize := (int(multi[12]) + 1) * 4
		f.Add(multi[12+hsize : 12+hsize+100])
	}
	f.Add([]byte{0x01, 0x00, 0x00, 0x41, 0x00})
	f.Add([]byte{0xe0, 0x00, 0x10, 0x00, 0x05, 0x5d, 1, 2, 3, 4, 5, 6, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		size, err := lzma2Size(data)
		if err == nil && (size < 0 || len(data) == 0 || data[len(data)-1] != 0) {
			t.Fatalf("size %d accepted for %x", size, data)
		}
	})
}

// Parallel xz decoding buffers whole blocks; it is chosen only when the decoders' share of
// memory holds a block, its dictionary and its look-ahead once per worker, and the
// look-ahead grows with the budget.
func TestXZParallelBudget(t *testing.T) {
	mib := int64(1 << 20)
	blk := xzBlockHeader{compressed: 7 * mib, uncompressed: 24 * mib, dictCap: 8 * mib}
	least := 8*mib + 7*mib + (xzLookahead+1)*xzPieceSize // per worker
	for _, tc := range []struct {
		name    string
		workers int
		budget  int64
		h       xzBlockHeader
		want    int
	}{
		{"one worker streams", 1, 0, blk, 0},
		{"no budget", 2, 0, blk, xzLookahead},
		{"budget fits two", 2, 2 * least, blk, xzLookahead},
		{"budget short by a byte", 2, 2*least - 1, blk, 0},
		{"bigger budget, longer look-ahead", 2, 2 * (least + 10*mib), blk, xzLookahead + 10},
		{"look-ahead stops at the block's size", 2, 1 << 40, blk, 24},
		{"no sizes in the header", 2, 0, xzBlockHeader{compressed: -1, uncompressed: -1, dictCap: 8 * mib}, 0},
		{"block too big to buffer", 2, 0, xzBlockHeader{compressed: xzMaxBuffered + 1, uncompressed: 24 * mib, dictCap: 8 * mib}, 0},
		{"small block, small dictionary", 2, 2 * (64<<10 + 32<<10 + 2*xzPieceSize), xzBlockHeader{compressed: 32 << 10, uncompressed: 64 << 10, dictCap: 8 * mib}, 1},
	} {
		x := &xzReader{workers: tc.workers, budget: tc.budget}
		if got := x.lookahead(tc.h); got != tc.want {
			t.Errorf("%s: lookahead = %d, want %d", tc.name, got, tc.want)
		}
	}
	// And the budget really switches paths: both decode testdata/multi.xz to the same bytes.
	multi, _ := os.ReadFile("testdata/multi.xz")
	for _, budget := range []int64{0, 1} {
		r, err := NewReader(bytes.NewReader(multi), Options{Concurrency: 2, Memory: budget})
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(r)
		r.Close()
		if s := sha256.Sum256(out); err != nil || hex.EncodeToString(s[:]) != testdataSHA {
			t.Errorf("budget %d: %v, sha256 %x", budget, err, s)
		}
	}
}
