package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// PieceLength is the piece length of an image's torrent: 1 MiB up to 1 GiB, 2 MiB up to
// 4 GiB, 4 MiB beyond. Small pieces spread a fresh image through the swarm sooner (a device
// serves a piece only once it has all of it) and keep what a device holds in RAM small;
// beyond a few thousand pieces the metainfo and the peers' bitfields grow for no gain.
func PieceLength(size int64) int64 {
	switch {
	case size <= 1<<30:
		return 1 << 20
	case size <= 4<<30:
		return 2 << 20
	}
	return 4 << 20
}

// cacheEntry remembers an image's info dictionary by the file's path, size and mtime, as the
// image hash cache (server/jobs) does, so that a restart does not read gigabytes again.
type cacheEntry struct {
	FileSize int64  `json:"file_size"`
	ModTime  int64  `json:"mtime_ns"`
	Info     []byte `json:"info"` // the bencoded info dictionary
}

type metaCache struct {
	path    string
	entries map[string]cacheEntry
	dirty   bool
}

func loadMetaCache(file string) *metaCache {
	c := &metaCache{path: file, entries: map[string]cacheEntry{}}
	if file == "" {
		return c
	}
	if b, err := os.ReadFile(file); err == nil {
		if json.Unmarshal(b, &c.entries) != nil {
			c.entries = map[string]cacheEntry{} // a broken cache is only a cache: recompute
		}
	}
	return c
}

func (c *metaCache) save() error {
	if c.path == "" || !c.dirty {
		return nil
	}
	b, err := json.MarshalIndent(c.entries, "", "  ")
	if err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}

// infoFor returns the bencoded info dictionary of the image at p (named by its file name), from
// the cache when the file's size and mtime are unchanged, else by hashing it. computed says
// which.
func (c *metaCache) infoFor(ctx context.Context, root *os.Root, file, p string) (info []byte, computed bool, err error) {
	f, err := root.Open(filepath.FromSlash(file))
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s is not a regular file", file)
	}
	if e, ok := c.entries[p]; ok && e.FileSize == fi.Size() && e.ModTime == fi.ModTime().UnixNano() {
		if _, err := decodeInfo(e.Info, fi.Size()); err == nil {
			return e.Info, false, nil
		}
	}
	b, err := buildInfo(ctx, f, path.Base(file), fi.Size())
	if err != nil {
		return nil, false, err
	}
	// A file replaced while it was read must not be cached under the new mtime.
	if fi2, err := f.Stat(); err != nil || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return nil, false, fmt.Errorf("%s changed while its pieces were hashed", file)
	}
	c.entries[p] = cacheEntry{FileSize: fi.Size(), ModTime: fi.ModTime().UnixNano(), Info: b}
	c.dirty = true
	return b, true, nil
}

// buildInfo hashes r (size bytes) into a single-file BitTorrent v1 info dictionary.
func buildInfo(ctx context.Context, r io.Reader, name string, size int64) ([]byte, error) {
	info := metainfo.Info{Name: name, Length: size, PieceLength: PieceLength(size)}
	err := info.GeneratePieces(func(metainfo.FileInfo) (io.ReadCloser, error) {
		return io.NopCloser(ctxReader{ctx, io.LimitReader(r, size)}), nil
	})
	if err != nil {
		return nil, fmt.Errorf("hash pieces: %w", err)
	}
	b, err := bencode.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("encode info: %w", err)
	}
	return b, nil
}

// decodeInfo checks a cached info dictionary against the file it is for.
func decodeInfo(b []byte, size int64) (metainfo.Info, error) {
	var info metainfo.Info
	if err := bencode.Unmarshal(b, &info); err != nil {
		return info, err
	}
	if info.Length != size || info.PieceLength <= 0 || int64(len(info.Pieces)) != 20*((size+info.PieceLength-1)/info.PieceLength) {
		return info, errors.New("cached info does not fit the file")
	}
	return info, nil
}

// ctxReader stops a long hash when the server is stopped.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
