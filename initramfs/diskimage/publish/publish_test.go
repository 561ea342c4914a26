package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func TestPublish(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "firmware.img")
	raw := bytes.Repeat([]byte("flashline image "), 200000) // 3.2 MB
	raw = append(raw, make([]byte, 1<<20)...)
	if err := os.WriteFile(img, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Publish(context.Background(), img, Options{XZBlockSize: 1 << 20, Contents: []string{"/boot/vmlinuz"}, DiskID: "abcd0123"})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(raw)
	if m.SHA256 != hex.EncodeToString(want[:]) || m.Size != int64(len(raw)) {
		t.Errorf("manifest hash/size = %s/%d, want %x/%d", m.SHA256, m.Size, want, len(raw))
	}
	if len(m.Files) != 4 {
		t.Fatalf("files = %+v, want raw, zstd, xz, sha256", m.Files)
	}

	decoders := map[string]func(io.Reader) (io.Reader, error){
		"zstd": func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) },
		"xz":   func(r io.Reader) (io.Reader, error) { return xz.NewReader(r) },
		"raw":  func(r io.Reader) (io.Reader, error) { return r, nil },
	}
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != f.SHA256 || int64(len(b)) != f.Size {
			t.Errorf("%s: manifest says %s/%d, file is %x/%d", f.Name, f.SHA256, f.Size, s, len(b))
		}
		if f.Format == "sha256" {
			if want := m.SHA256 + "  firmware.img\n"; string(b) != want {
				t.Errorf("sha256 file = %q, want %q", b, want)
			}
			continue
		}
		r, err := decoders[f.Format](bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: decode: %v", f.Name, err)
		}
		if !bytes.Equal(got, raw) {
			t.Errorf("%s decodes to %d bytes that differ from the image", f.Name, len(got))
		}
	}

	var onDisk Manifest
	js, err := os.ReadFile(img + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &onDisk); err != nil {
		t.Fatal(err)
	}
	if onDisk.SHA256 != m.SHA256 || onDisk.DiskID != "abcd0123" || len(onDisk.Contents) != 1 {
		t.Errorf("manifest file = %+v", onDisk)
	}
}
