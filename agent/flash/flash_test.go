package flash

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// testImage is a disk-like image: a recognisable first MiB, then data and zero runs.
func testImage(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for off := 0; off < n; {
		if off >= HoldBack && r.IntN(3) == 0 {
			off += zeroSeg * (2 + r.IntN(6)) // a zero run long enough to hold whole segments
			continue
		}
		k := min(n-off, 4096*(1+r.IntN(200)))
		for i := off; i < off+k; i++ {
			b[i] = byte(r.Uint32() | 1)
		}
		off += k
	}
	return b
}

// zeroSegments counts the bytes in all-zero segments past the first MiB: what zero skipping
// must leave out.
func zeroSegments(img []byte) int64 {
	var n int64
	for off := HoldBack; off < len(img); off += zeroSeg {
		seg := img[off:min(off+zeroSeg, len(img))]
		if bytes.Equal(seg, make([]byte, len(seg))) {
			n += int64(len(seg))
		}
	}
	return n
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func compress(t *testing.T, format string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch format {
	case "raw":
		return data
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case "zstd":
		w, _ := zstd.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case "xz":
		w, err := xz.WriterConfig{DictCap: 1 << 16, BlockSize: 1 << 20}.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, name string, data []byte) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteEveryFormat(t *testing.T) {
	big := testImage(5<<20+1234, 1) // not a multiple of anything
	for _, format := range []string{"raw", "gzip", "zstd", "xz"} {
		img := big
		if format == "xz" {
			img = big[:5<<19+1234] // the Go xz encoder making the test input is slow
		}
		for _, zs := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s zero-skip=%v", format, zs), func(t *testing.T) {
				src := writeFile(t, "img", compress(t, format, img))
				dst := filepath.Join(t.TempDir(), "disk")
				res, err := Write(context.Background(), Options{Source: src, Target: dst, SHA256: sum(img),
					Size: int64(len(img)), NoZeroSkip: !zs, BufferSize: 1 << 20, VerifyReadback: true})
				if err != nil {
					t.Fatal(err)
				}
				if got := readFile(t, dst); !bytes.Equal(got, img) {
					t.Fatalf("target differs from the image (%d bytes, want %d)", len(got), len(img))
				}
				if res.Format != format || res.Bytes != int64(len(img)) || res.SHA256 != sum(img) {
					t.Errorf("result %+v", res)
				}
				if want := zeroSegments(img); zs && res.ZeroSkipped != want || !zs && res.ZeroSkipped != 0 || want == 0 {
					t.Errorf("zero-skip %v: skipped %d, image has %d bytes of zero segments", zs, res.ZeroSkipped, want)
				}
			})
		}
	}
}

func TestWriteStdin(t *testing.T) {
	img := testImage(2<<20, 2)
	r, w, _ := os.Pipe()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	go func() { w.Write(compress(t, "zstd", img)); w.Close() }()
	dst := filepath.Join(t.TempDir(), "disk")
	if _, err := Write(context.Background(), Options{Source: "-", Target: dst, SHA256: sum(img)}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst), img) {
		t.Fatal("target differs")
	}
}

// Every failure is one line naming the reason, and leaves the first MiB zeroed.
func TestWriteFailures(t *testing.T) {
	img := testImage(3<<20, 3)
	gz := compress(t, "gzip", img)
	flipped := append([]byte{}, img...)
	flipped[2<<20] ^= 1
	for _, tc := range []struct {
		name string
		src  []byte
		opts Options
		want string
		// untouched: refused before the target was opened, so it must keep its contents.
		untouched bool
	}{
		{"sha mismatch", img, Options{SHA256: strings.Repeat("ab", 32)}, "flash: sha256 mismatch: got " + sum(img) + " want " + strings.Repeat("ab", 32), false},
		{"corrupt byte, raw", flipped, Options{SHA256: sum(img)}, "flash: sha256 mismatch", false},
		{"short, size given", compress(t, "zstd", img[:2<<20]), Options{Size: 3 << 20}, "flash: source ended after 2097152 of 3145728 bytes", false},
		{"long, size given", compress(t, "zstd", img), Options{Size: 2 << 20}, "flash: image is longer than 2097152 bytes", false},
		{"raw file vs size", img, Options{Size: 2 << 20}, "flash: source is 3145728 bytes, --size says 2097152", true},
		{"truncated gzip", gz[:len(gz)-100], Options{}, "gzip: unexpected EOF", false},
		{"empty", nil, Options{}, "flash: the image is empty", false},
		{"bad sha flag", img, Options{SHA256: "xyz"}, "flash: --sha256 must be 64 hex digits", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := writeFile(t, "disk", bytes.Repeat([]byte{0xee}, 4<<20))
			tc.opts.Source, tc.opts.Target = writeFile(t, "img", tc.src), dst
			_, err := Write(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "flash: ") {
				t.Errorf("not a one-line flash error: %q", err)
			}
			got := readFile(t, dst)
			if tc.untouched {
				if !bytes.Equal(got, bytes.Repeat([]byte{0xee}, 4<<20)) {
					t.Error("target modified although the flash was refused up front")
				}
			} else if !bytes.Equal(got[:HoldBack], make([]byte, HoldBack)) {
				t.Error("first MiB not wiped after a failure")
			}
		})
	}
}

// dropServer serves data with Range support and drops or corrupts on request.
func dropServer(t *testing.T, data []byte, drops int, corruptAt int) (string, *atomic.Int32) {
	var reqs atomic.Int32
	r := rand.New(rand.NewPCG(9, 9))
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := int(reqs.Add(1))
		body := data
		if corruptAt >= 0 {
			body = append([]byte{}, data...)
			body[corruptAt] ^= 0x40
		}
		w.Header().Set("ETag", `"img"`)
		var out http.ResponseWriter = w
		if n <= drops {
			mu.Lock()
			cut := 1 + r.IntN(len(data)/2)
			mu.Unlock()
			out = &dropWriter{ResponseWriter: w, left: cut}
		}
		http.ServeContent(out, req, "img", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/img", &reqs
}

type dropWriter struct {
	http.ResponseWriter
	left int
}

func (d *dropWriter) Write(p []byte) (int, error) {
	if len(p) > d.left {
		d.ResponseWriter.Write(p[:d.left])
		d.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	d.left -= len(p)
	return d.ResponseWriter.Write(p)
}

func TestWriteHTTPDropsResume(t *testing.T) {
	img := testImage(6<<20, 4)
	for _, format := range []string{"raw", "zstd", "gzip"} {
		t.Run(format, func(t *testing.T) {
			url, reqs := dropServer(t, compress(t, format, img), 4, -1)
			dst := filepath.Join(t.TempDir(), "disk")
			res, err := Write(context.Background(), Options{Source: url, Target: dst, SHA256: sum(img),
				RetryBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.Resumes < 1 || res.Resumes != int(reqs.Load())-1 {
				t.Errorf("resumes %d requests %d", res.Resumes, reqs.Load())
			}
			if !bytes.Equal(readFile(t, dst), img) {
				t.Fatal("target differs")
			}
		})
	}
}

func TestWriteHTTPCorruptByte(t *testing.T) {
	img := testImage(3<<19, 5)
	for _, format := range []string{"raw", "zstd", "gzip", "xz"} {
		t.Run(format, func(t *testing.T) {
			z := compress(t, format, img)
			url, _ := dropServer(t, z, 0, len(z)/2)
			dst := filepath.Join(t.TempDir(), "disk")
			_, err := Write(context.Background(), Options{Source: url, Target: dst, SHA256: sum(img)})
			if err == nil {
				t.Fatal("corrupt stream accepted")
			}
			if got := readFile(t, dst); len(got) >= HoldBack && !bytes.Equal(got[:HoldBack], make([]byte, HoldBack)) {
				t.Error("first MiB not zero")
			}
		})
	}
}

// The first MiB reaches the target only after everything else; while the flash runs, and
// when it fails, the target has no partition table.
func TestFirstMiBWrittenLast(t *testing.T) {
	img := testImage(6<<20, 6)
	for _, finish := range []bool{true, false} {
		t.Run(fmt.Sprintf("finish=%v", finish), func(t *testing.T) {
			release := make(chan struct{})
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", fmt.Sprint(len(img)))
				w.Write(img[:4<<20])
				w.(http.Flusher).Flush()
				<-release
				if !finish {
					panic(http.ErrAbortHandler)
				}
				w.Write(img[4<<20:])
			}))
			defer ts.Close()
			dst := writeFile(t, "disk", bytes.Repeat([]byte{0xee}, 8<<20))
			done := make(chan error, 1)
			go func() {
				_, err := Write(context.Background(), Options{Source: ts.URL, Target: dst, SHA256: sum(img),
					BufferSize: 1 << 20, Retries: -1, NoDirect: true})
				done <- err
			}()
			// Wait until the second and third MiB are on the target.
			deadline := time.Now().Add(20 * time.Second)
			for {
				b, _ := os.ReadFile(dst)
				if len(b) >= 3<<20 && bytes.Equal(b[1<<20:3<<20], img[1<<20:3<<20]) {
					if !bytes.Equal(b[:HoldBack], make([]byte, HoldBack)) {
						t.Fatal("first MiB on the target before the rest was written")
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("data never reached the target")
				}
				time.Sleep(10 * time.Millisecond)
			}
			close(release)
			err := <-done
			b := readFile(t, dst)
			if finish {
				if err != nil || !bytes.Equal(b[:len(img)], img) {
					t.Fatalf("err %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("dropped stream accepted")
				}
				if !bytes.Equal(b[:HoldBack], make([]byte, HoldBack)) {
					t.Fatal("first MiB written although the flash failed")
				}
			}
		})
	}
}

func TestProgress(t *testing.T) {
	img := testImage(8<<20, 7)
	var calls []Progress
	var mu sync.Mutex
	src := writeFile(t, "img.zst", compress(t, "zstd", img))
	start := time.Now()
	_, err := Write(context.Background(), Options{Source: src, Target: filepath.Join(t.TempDir(), "d"),
		Size: int64(len(img)), VerifyReadback: true, ProgressInterval: 50 * time.Millisecond,
		Progress: func(p Progress) { mu.Lock(); calls = append(calls, p); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if max := int(el/(50*time.Millisecond)) + 2; len(calls) > max {
		t.Errorf("%d progress calls in %v (bound %d)", len(calls), el, max)
	}
	last := calls[len(calls)-1]
	if last.Phase != "done" || last.Written != int64(len(img)) || last.Total != int64(len(img)) {
		t.Errorf("last progress %+v", last)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].Phase == calls[i-1].Phase && calls[i].Written < calls[i-1].Written {
			t.Errorf("progress went backwards: %+v then %+v", calls[i-1], calls[i])
		}
	}
}

// An image with a GPT written to a larger target: the backup header ends up at the end, and
// with GrowLastPartition the last partition fills the disk.
func TestGPTFixupOnLargerTarget(t *testing.T) {
	dir := t.TempDir()
	imgPath := filepath.Join(dir, "img")
	f, _ := os.Create(imgPath)
	f.Truncate(8 << 20)
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: 8<<20/512 - 34, Type: gpt.LinuxFilesystem, Name: "root"},
	}}
	if err := tbl.Write(f, 8<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	img := readFile(t, imgPath)
	dst := writeFile(t, "disk", nil)
	os.Truncate(dst, 64<<20)
	res, err := Write(context.Background(), Options{Source: writeFile(t, "img.zst", compress(t, "zstd", img)),
		Target: dst, SHA256: sum(img), GrowLastPartition: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.GPT.Moved || res.GPT.Grown != "root" {
		t.Errorf("gpt %+v", res.GPT)
	}
	d, _ := os.Open(dst)
	defer d.Close()
	got, err := gpt.Read(d, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(d, 64<<20); err != nil {
		t.Error(err)
	}
	if got.Partitions[0].End != 64<<20/512-34 {
		t.Errorf("partition end %d", got.Partitions[0].End)
	}
}

func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	f := writeFile(t, "backing", nil)
	os.Truncate(f, size)
	out, err := exec.Command("losetup", "--find", "--show", f).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// A block device: refused when too small before a byte is written; when the size is only
// learnt while streaming, the flash fails and the first MiB is wiped.
func TestWriteBlockDevice(t *testing.T) {
	dev := loopDevice(t, 8<<20)
	img := testImage(6<<20, 8)
	z := writeFile(t, "img.zst", compress(t, "zstd", img))
	res, err := Write(context.Background(), Options{Source: z, Target: dev, SHA256: sum(img), VerifyReadback: true,
		Size: int64(len(img))})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(img))
	d, _ := os.Open(dev)
	d.ReadAt(got, 0)
	d.Close()
	if !bytes.Equal(got, img) {
		t.Fatal("device differs from the image")
	}
	t.Logf("direct %v zero-skipped %d", res.Direct, res.ZeroSkipped)
	// Loop devices zero ranges by punching the backing file: zeros are guaranteed, so the
	// zero blocks were skipped.
	wz, _ := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/queue/write_zeroes_max_bytes")
	if strings.TrimSpace(string(wz)) != "0" && res.ZeroSkipped == 0 {
		t.Errorf("device zeroes ranges (%s) but no zero block was skipped", strings.TrimSpace(string(wz)))
	}

	big := testImage(10<<20, 9)
	_, err = Write(context.Background(), Options{Source: writeFile(t, "big", big), Target: dev})
	if err == nil || !strings.Contains(err.Error(), "smaller than the image") {
		t.Fatalf("raw too big: %v", err)
	}
	d, _ = os.Open(dev)
	d.ReadAt(got, 0)
	d.Close()
	if !bytes.Equal(got, img) {
		t.Fatal("device modified although the image was refused")
	}
	_, err = Write(context.Background(), Options{Source: writeFile(t, "big.gz", compress(t, "gzip", big)), Target: dev})
	if err == nil || !strings.Contains(err.Error(), "image is larger than the target") {
		t.Fatalf("gzip too big: %v", err)
	}
	d, _ = os.Open(dev)
	d.ReadAt(got, 0)
	d.Close()
	if !bytes.Equal(got[:HoldBack], make([]byte, HoldBack)) {
		t.Fatal("first MiB not wiped")
	}

	// An image exactly as large as the device: its last MiB (the backup GPT's place) is
	// held back like the first, and both arrive intact.
	exact := testImage(8<<20-4096+512, 11) // ends inside the device's last MiB, unaligned
	if _, err := Write(context.Background(), Options{Source: writeFile(t, "exact", exact), Target: dev,
		SHA256: sum(exact), VerifyReadback: true}); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(exact))
	d, _ = os.Open(dev)
	d.ReadAt(back, 0)
	d.Close()
	if !bytes.Equal(back, exact) {
		t.Fatal("device differs from an image that fills it")
	}

	// The same with a wrong hash: both ends are wiped, so no backup GPT at the device's end
	// can resurrect the broken image.
	full := testImage(8<<20, 10)
	copy(full[8<<20-512:], "EFI PART")
	_, err = Write(context.Background(), Options{Source: writeFile(t, "full", full), Target: dev, SHA256: strings.Repeat("0", 64)})
	if err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("full-size image: %v", err)
	}
	all := make([]byte, 8<<20)
	d, _ = os.Open(dev)
	d.ReadAt(all, 0)
	d.Close()
	if !bytes.Equal(all[:HoldBack], make([]byte, HoldBack)) || !bytes.Equal(all[8<<20-HoldBack:], make([]byte, HoldBack)) {
		t.Fatal("partition tables left on the device after a failed flash")
	}
}

// With --sha256 the zstd decoder skips its frame checksums: the SHA-256 decides. A stream
// whose data is damaged still fails and leaves the first MiB wiped; one whose only damage is
// the checksum field itself writes the exact image, which the SHA-256 proves. Without a
// SHA-256 the frame checksum is still checked.
func TestZstdChecksumAndSHA256(t *testing.T) {
	img := testImage(3<<20, 9)
	z := compress(t, "zstd", img)
	badData := append([]byte{}, z...)
	badData[len(z)/2] ^= 0x20
	badSum := append([]byte{}, z...)
	badSum[len(z)-1] ^= 0xff // the frame's XXH64 checksum is its last 4 bytes
	for _, tc := range []struct {
		name   string
		src    []byte
		sha    string
		wantOK bool
	}{
		{"damaged data, sha256", badData, sum(img), false},
		{"damaged checksum only, sha256", badSum, sum(img), true},
		{"damaged checksum only, no sha256", badSum, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := writeFile(t, "disk", bytes.Repeat([]byte{0xee}, 4<<20))
			_, err := Write(context.Background(), Options{Source: writeFile(t, "img", tc.src), Target: dst, SHA256: tc.sha})
			got := readFile(t, dst)
			if tc.wantOK {
				if err != nil || !bytes.Equal(got[:len(img)], img) {
					t.Fatalf("err %v, image written correctly: %v", err, bytes.Equal(got[:len(img)], img))
				}
				return
			}
			if err == nil {
				t.Fatal("flash succeeded")
			}
			if !bytes.Equal(got[:HoldBack], make([]byte, HoldBack)) {
				t.Error("first MiB not wiped after a failure")
			}
		})
	}
}
