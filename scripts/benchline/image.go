package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// image is the line's test image: a zstd file and what its decompressed content must be.
type image struct {
	Path    string // the .img.zst file
	SHA256  string // of the decompressed image
	RawSize int64  // decompressed size
	Size    int64  // size of the .zst file, what crosses the network
}

// makeImage returns the cached image of dir, or builds it: mib MiB of random data (a
// firmware's packed files do not compress either) with one MiB of zeros after every 8 MiB
// (free space), so the zstd file is about mib MiB. The data are seeded, so every build is
// the same image.
func makeImage(ctx context.Context, dir string, mib int) (image, error) {
	img := image{Path: filepath.Join(dir, fmt.Sprintf("line-%d.img.zst", mib))}
	sumFile := img.Path + ".sum"
	if b, err := os.ReadFile(sumFile); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			img.SHA256 = f[0]
			img.RawSize, err = strconv.ParseInt(f[1], 10, 64)
			if st, serr := os.Stat(img.Path); err == nil && serr == nil {
				img.Size = st.Size()
				return img, nil
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return img, fmt.Errorf("making the image: %w", err)
	}
	tmp := img.Path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return img, fmt.Errorf("making the image: %w", err)
	}
	defer os.Remove(tmp)
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	enc, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return img, fmt.Errorf("making the image: %w", err)
	}
	h := sha256.New()
	w := io.MultiWriter(enc, h)
	rng := rand.NewChaCha8([32]byte{'f', 'l', 'a', 's', 'h', 'l', 'i', 'n', 'e'})
	chunk := make([]byte, 1<<20)
	zeros := make([]byte, 1<<20)
	for i := 0; i < mib; i++ {
		if err := ctx.Err(); err != nil {
			return img, err
		}
		_, _ = rng.Read(chunk)
		if _, err := w.Write(chunk); err != nil {
			return img, fmt.Errorf("making the image: %w", err)
		}
		img.RawSize += int64(len(chunk))
		if i%8 == 7 {
			if _, err := w.Write(zeros); err != nil {
				return img, fmt.Errorf("making the image: %w", err)
			}
			img.RawSize += int64(len(zeros))
		}
	}
	if err := enc.Close(); err != nil {
		return img, fmt.Errorf("making the image: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return img, fmt.Errorf("making the image: %w", err)
	}
	if err := f.Close(); err != nil {
		return img, fmt.Errorf("making the image: %w", err)
	}
	img.SHA256 = hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp, img.Path); err != nil {
		return img, fmt.Errorf("making the image: %w", err)
	}
	if err := os.WriteFile(sumFile, fmt.Appendf(nil, "%s %d\n", img.SHA256, img.RawSize), 0o644); err != nil {
		return img, fmt.Errorf("making the image: %w", err)
	}
	st, err := os.Stat(img.Path)
	if err != nil {
		return img, fmt.Errorf("making the image: %w", err)
	}
	img.Size = st.Size()
	return img, nil
}

// checkTarget reports whether path holds exactly the image: its size and its SHA-256.
func checkTarget(path string, img image) (bool, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return false, "", err
	}
	if n != img.RawSize {
		return false, fmt.Sprintf("size %d, want %d", n, img.RawSize), nil
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != img.SHA256 {
		return false, "sha256 " + got + ", want " + img.SHA256, nil
	}
	return true, "", nil
}
