package jobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/flashline/flashline/protocol/bmap"
	"github.com/flashline/flashline/server/config"
)

// Image is an image file with what a job needs to know about its decompressed content.
type Image struct {
	Name     string
	File     string // path under the images directory, as served under /images/
	Path     string // path on this host
	SHA256   string // of the decompressed image
	Size     int64  // decompressed size
	Format   string // raw, gzip, zstd, xz (sniffed from the file's magic)
	FileSize int64
	ModTime  time.Time
	Source   string // where SHA256 and Size came from: config, sidecar, computed, cache
	// Bmap is the image's block map found beside it, nil when there is none.
	Bmap *BmapFile
}

// BmapFile is a bmaptool block map published beside an image ("<file>.bmap", or for a
// compressed image "<raw>.bmap"), sent with the job by its hash.
type BmapFile struct {
	File   string // path under the images directory
	SHA256 string // of the .bmap file
	Size   int64  // of the .bmap file
	Mapped int64  // image bytes in its ranges
}

// ImageOptions controls how image metadata is found.
type ImageOptions struct {
	Dir string
	// Compute hashes (and decompresses) an image whose SHA-256 or size neither the config nor
	// a sidecar gives.
	Compute bool
	// CacheFile, when set, remembers computed values keyed by file, size and mtime, so a
	// restart does not hash gigabytes again.
	CacheFile string
	Logger    *slog.Logger
}

// LoadImages resolves every configured image: the file must exist; its SHA-256 and size come
// from the config, then a sidecar "<file>.sha256", then (if allowed) hashing the file.
func LoadImages(ctx context.Context, imgs []config.Image, opt ImageOptions) (map[string]Image, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cache := loadCache(opt.CacheFile)
	cacheDirty := false
	out := make(map[string]Image, len(imgs))
	var errs []error
	for _, ci := range imgs {
		im, computed, err := loadImage(ctx, ci, opt, cache, log)
		if err == nil {
			im.Bmap, err = findBmap(opt.Dir, im)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("image %q: %w", ci.Name, err))
			continue
		}
		cacheDirty = cacheDirty || computed
		out[ci.Name] = im
	}
	if cacheDirty && opt.CacheFile != "" {
		if err := saveCache(opt.CacheFile, cache); err != nil {
			log.Warn("could not save the image hash cache", "file", opt.CacheFile, "err", err)
		}
	}
	return out, errors.Join(errs...)
}

type cacheEntry struct {
	FileSize int64  `json:"file_size"`
	ModTime  int64  `json:"mtime_ns"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
}

func loadCache(path string) map[string]cacheEntry {
	c := map[string]cacheEntry{}
	if path == "" {
		return c
	}
	b, err := os.ReadFile(path)
	if err == nil {
		json.Unmarshal(b, &c) // a broken cache is only a cache: recompute
	}
	return c
}

func saveCache(path string, c map[string]cacheEntry) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func loadImage(ctx context.Context, ci config.Image, opt ImageOptions, cache map[string]cacheEntry, log *slog.Logger) (Image, bool, error) {
	if err := config.CheckRelPath(ci.File); err != nil {
		return Image{}, false, err
	}
	root, err := os.OpenRoot(opt.Dir)
	if err != nil {
		return Image{}, false, fmt.Errorf("images directory: %w", err)
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(ci.File))
	if err != nil {
		return Image{}, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Image{}, false, err
	}
	if !fi.Mode().IsRegular() {
		return Image{}, false, fmt.Errorf("%s is not a regular file", ci.File)
	}
	format, err := sniff(f)
	if err != nil {
		return Image{}, false, fmt.Errorf("%s: %w", ci.File, err)
	}
	im := Image{Name: ci.Name, File: ci.File, Path: filepath.Join(opt.Dir, filepath.FromSlash(ci.File)), Format: format,
		FileSize: fi.Size(), ModTime: fi.ModTime(), SHA256: strings.ToLower(ci.SHA256), Size: int64(ci.Size), Source: "config"}
	if im.Size == 0 && format == "raw" {
		im.Size = fi.Size()
	}
	if im.SHA256 == "" || im.Size == 0 {
		sum, size, found, err := sidecars(root, ci.File)
		if err != nil {
			return Image{}, false, err
		}
		if im.SHA256 == "" {
			im.SHA256 = sum
		}
		if im.Size == 0 {
			im.Size = size
		}
		if found != "" {
			im.Source = "sidecar " + found
		}
	}
	if im.SHA256 != "" && im.Size != 0 {
		return im, false, nil
	}
	key := im.Path
	if e, ok := cache[key]; ok && e.FileSize == fi.Size() && e.ModTime == fi.ModTime().UnixNano() {
		im.SHA256, im.Size, im.Source = e.SHA256, e.Size, "cache"
		return im, false, nil
	}
	if !opt.Compute {
		return Image{}, false, fmt.Errorf("%s: no sha256/size in the config or a .sha256 sidecar, and computing is off", ci.File)
	}
	log.Info("hashing image (decompressing if needed); put sha256 and size into the config or a sidecar to skip this",
		"image", ci.Name, "file", ci.File, "format", format, "bytes", fi.Size())
	start := time.Now()
	sum, size, err := HashImage(ctx, f)
	if err != nil {
		return Image{}, false, fmt.Errorf("%s: %w", ci.File, err)
	}
	log.Info("image hashed", "image", ci.Name, "sha256", sum, "size", size, "took", time.Since(start).Round(time.Millisecond))
	if im.SHA256 != "" && im.SHA256 != sum {
		return Image{}, false, fmt.Errorf("%s: configured sha256 %s but the content hashes to %s", ci.File, im.SHA256, sum)
	}
	im.SHA256, im.Size, im.Source = sum, size, "computed"
	cache[key] = cacheEntry{FileSize: fi.Size(), ModTime: fi.ModTime().UnixNano(), SHA256: sum, Size: size}
	return im, true, nil
}

// sidecars looks for the decompressed image's SHA-256 and size beside file: "<file>.sha256"
// and a "<file>.json" manifest ({"sha256": ..., "size": ...}); for a compressed file
// (.zst/.gz/.xz) also the raw image's "<raw>.sha256" and "<raw>.json", and the raw image's own
// size when it is published too (mkfirmware's layout). It returns the names it used.
func sidecars(root *os.Root, file string) (sum string, size int64, found string, err error) {
	bases := []string{file}
	for _, ext := range []string{".zst", ".zstd", ".gz", ".xz"} {
		if raw, ok := strings.CutSuffix(file, ext); ok && raw != "" {
			bases = append(bases, raw)
		}
	}
	var used []string
	for _, b := range bases {
		for _, kind := range []string{".sha256", ".json"} {
			f, err := root.Open(filepath.FromSlash(b + kind))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return "", 0, "", fmt.Errorf("%s%s: %w", b, kind, err)
			}
			data, err := io.ReadAll(io.LimitReader(f, 1<<20))
			f.Close()
			if err != nil {
				return "", 0, "", fmt.Errorf("%s%s: %w", b, kind, err)
			}
			var s string
			var n int64
			if kind == ".json" {
				s, n, err = ParseManifest(data)
			} else {
				s, n, err = ParseSidecar(bytes.NewReader(data))
			}
			if err != nil {
				return "", 0, "", fmt.Errorf("%s%s: %w", b, kind, err)
			}
			if sum != "" && s != "" && s != sum {
				return "", 0, "", fmt.Errorf("%s%s says sha256 %s but %s says %s", b, kind, s, strings.Join(used, ", "), sum)
			}
			if sum == "" {
				sum = s
			}
			if size == 0 {
				size = n
			}
			used = append(used, b+kind)
		}
	}
	// The raw image published beside the compressed one gives the size.
	if size == 0 && len(bases) > 1 {
		if fi, err := root.Stat(filepath.FromSlash(bases[1])); err == nil && fi.Mode().IsRegular() {
			if f, err := root.Open(filepath.FromSlash(bases[1])); err == nil {
				format, _ := sniff(f)
				f.Close()
				if format == "raw" {
					size = fi.Size()
					used = append(used, bases[1])
				}
			}
		}
	}
	return sum, size, strings.Join(used, ", "), nil
}

// ParseManifest reads a JSON manifest {"sha256": HEX, "size": BYTES} (other keys ignored).
func ParseManifest(b []byte) (sum string, size int64, err error) {
	var m struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", 0, fmt.Errorf("manifest: %w", err)
	}
	if m.SHA256 != "" && (len(m.SHA256) != 64 || !isHex(m.SHA256)) {
		return "", 0, fmt.Errorf("manifest: sha256 %q: want 64 hex digits", m.SHA256)
	}
	if m.Size < 0 {
		return "", 0, errors.New("manifest: negative size")
	}
	return strings.ToLower(m.SHA256), m.Size, nil
}

// ParseSidecar reads a "<image>.sha256" file: the first field is the 64-hex-digit SHA-256 of
// the decompressed image (sha256sum's output format works: "HASH  name"); an optional
// "size=BYTES" field anywhere gives the decompressed size.
func ParseSidecar(r io.Reader) (sum string, size int64, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, f := range strings.Fields(line) {
			switch {
			case sum == "" && len(f) == 64 && isHex(f):
				sum = strings.ToLower(f)
			case strings.HasPrefix(f, "size="):
				v, err := config.ParseBytes(strings.TrimPrefix(f, "size="))
				if err != nil {
					return "", 0, err
				}
				size = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", 0, err
	}
	if sum == "" {
		return "", 0, errors.New("no SHA-256 (64 hex digits) found")
	}
	return sum, size, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// sniff names the compression of an image by its magic bytes, as the agent does.
func sniff(f *os.File) (string, error) {
	var b [6]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return formatOf(b[:n]), nil
}

func formatOf(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	}
	return "raw"
}

// HashImage returns the SHA-256 and length of r's content after decompressing it according to
// its magic bytes.
func HashImage(ctx context.Context, r io.Reader) (string, int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(6)
	var src io.Reader = br
	switch formatOf(head) {
	case "gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return "", 0, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		src = zr
	case "zstd":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(0))
		if err != nil {
			return "", 0, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		src = zr
	case "xz":
		zr, err := xz.NewReader(br)
		if err != nil {
			return "", 0, fmt.Errorf("xz: %w", err)
		}
		src = zr
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", 0, err
		}
		k, err := src.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", 0, fmt.Errorf("decompress after %s bytes: %w", strconv.FormatInt(n, 10), err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// findBmap looks for the image's block map beside it: "<file>.bmap", then for a compressed
// file "<raw>.bmap". A map that is there but cannot be this image's is an error, not
// silently ignored: the line would flash whole images without anyone noticing.
func findBmap(dir string, im Image) (*BmapFile, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("images directory: %w", err)
	}
	defer root.Close()
	cands := []string{im.File + ".bmap"}
	for _, ext := range []string{".zst", ".zstd", ".gz", ".xz"} {
		if raw, ok := strings.CutSuffix(im.File, ext); ok && raw != "" {
			cands = append(cands, raw+".bmap")
		}
	}
	for _, c := range cands {
		f, err := root.Open(filepath.FromSlash(c))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		data, err := io.ReadAll(io.LimitReader(f, bmap.MaxFileSize+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		m, err := bmap.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		if im.Size > 0 && m.ImageSize != im.Size {
			return nil, fmt.Errorf("%s maps a %d-byte image, but %s is %d bytes decompressed", c, m.ImageSize, im.File, im.Size)
		}
		sum := sha256.Sum256(data)
		return &BmapFile{File: c, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Mapped: m.MappedBytes()}, nil
	}
	return nil, nil
}
