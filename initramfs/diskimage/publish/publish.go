// Package publish turns a finished disk image into the files a line server serves: the raw
// image, zstd and multi-block xz copies, a sha256sum-style checksum file and a JSON manifest.
// The hash is always of the raw (decompressed) image, which is what the agent verifies.
package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/flashline/flashline/initramfs/diskimage/xzblock"
	"github.com/klauspost/compress/zstd"
)

// Manifest describes a published image (written as <image>.json).
type Manifest struct {
	// Name is the raw image's file name.
	Name string `json:"name"`
	// Size and SHA256 are the raw image's: what the agent's flash --size/--sha256 check.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Files are the published files, the raw image first.
	Files []File `json:"files"`
	// Contents lists what the image holds (paths in its file systems), for people.
	Contents []string `json:"contents,omitempty"`
	// DiskID is the image's partition table identifier (blkid's PTUUID).
	DiskID string `json:"disk_id,omitempty"`
}

// File is one published file.
type File struct {
	Name   string `json:"name"`
	Format string `json:"format"` // raw, zstd, xz, sha256
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Options tune compression. The zero value is fine.
type Options struct {
	// XZBlockSize is the uncompressed size of each xz block; default 8 MiB, so that even a
	// small image has several blocks and parallel decoders are exercised.
	XZBlockSize int
	// Contents and DiskID are copied into the manifest.
	Contents []string
	DiskID   string
}

// Publish writes image.zst, image.xz, image.sha256 and image.json next to image.
func Publish(ctx context.Context, image string, o Options) (*Manifest, error) {
	sum, size, err := hashFile(image)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", image, err)
	}
	base := filepath.Base(image)
	m := &Manifest{Name: base, Size: size, SHA256: sum, Contents: o.Contents, DiskID: o.DiskID}
	m.Files = append(m.Files, File{Name: base, Format: "raw", Size: size, SHA256: sum})

	for _, c := range []struct {
		ext, format string
		compress    func(context.Context, io.Writer, io.Reader) error
	}{
		{".zst", "zstd", compressZstd},
		{".xz", "xz", func(ctx context.Context, w io.Writer, r io.Reader) error {
			return xzblock.Compress(ctx, w, r, xzblock.Options{BlockSize: o.XZBlockSize})
		}},
	} {
		out := image + c.ext
		if err := compressFile(ctx, image, out, c.compress); err != nil {
			return nil, fmt.Errorf("publish %s: %w", out, err)
		}
		f, err := describe(out, c.format)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", out, err)
		}
		m.Files = append(m.Files, f)
	}

	sumFile := image + ".sha256"
	if err := writeAtomic(sumFile, []byte(sum+"  "+base+"\n")); err != nil {
		return nil, fmt.Errorf("publish %s: %w", sumFile, err)
	}
	f, err := describe(sumFile, "sha256")
	if err != nil {
		return nil, err
	}
	m.Files = append(m.Files, f)

	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(image+".json", append(js, '\n')); err != nil {
		return nil, fmt.Errorf("publish %s.json: %w", image, err)
	}
	return m, nil
}

func compressZstd(ctx context.Context, w io.Writer, r io.Reader) error {
	// Level "better" keeps the window at 8 MiB, inside the agent's decoder limit.
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, ctxReader{ctx, r}); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func compressFile(ctx context.Context, in, out string, compress func(context.Context, io.Writer, io.Reader) error) error {
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := out + ".part"
	dst, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := compress(ctx, dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func describe(path, format string) (File, error) {
	sum, size, err := hashFile(path)
	if err != nil {
		return File{}, err
	}
	return File{Name: filepath.Base(path), Format: format, Size: size, SHA256: sum}, nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".part"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
