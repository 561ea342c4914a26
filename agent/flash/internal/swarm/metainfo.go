package swarm

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/anacrolix/torrent/metainfo"
)

// MaxMetainfo bounds a .torrent's size: a single-file torrent of a 64 GiB image in 256 KiB
// pieces carries 5 MiB of piece hashes, and anything larger is not one of the line's.
const MaxMetainfo = 8 << 20

// MaxPieceLength bounds a piece: the window holds pieces whole, at least two of them.
const MaxPieceLength = 16 << 20

// Torrent is a parsed single-file metainfo.
type Torrent struct {
	MI       *metainfo.MetaInfo
	Info     metainfo.Info
	InfoHash metainfo.Hash
}

// Parse reads b as the metainfo of one file (the image as served). It refuses what the
// swarm source could not use: several files, no pieces, a piece count that does not match
// the length, or bytes after the dictionary.
func Parse(b []byte) (*Torrent, error) {
	if len(b) > MaxMetainfo {
		return nil, fmt.Errorf("metainfo is %d bytes, more than %d", len(b), MaxMetainfo)
	}
	mi, err := metainfo.Load(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse metainfo: %w", err)
	}
	if len(mi.InfoBytes) == 0 {
		return nil, errors.New("parse metainfo: no info dictionary")
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, fmt.Errorf("parse metainfo info: %w", err)
	}
	if len(info.Files) != 0 {
		return nil, fmt.Errorf("metainfo has %d files, the image is one", len(info.Files))
	}
	if info.Length <= 0 || info.PieceLength <= 0 {
		return nil, fmt.Errorf("metainfo: length %d, piece length %d", info.Length, info.PieceLength)
	}
	if info.PieceLength > MaxPieceLength || info.PieceLength%(16<<10) != 0 {
		// A piece is held in memory whole; 16 KiB is BitTorrent's block.
		return nil, fmt.Errorf("metainfo: piece length %d is not a multiple of 16 KiB up to %d", info.PieceLength, MaxPieceLength)
	}
	if len(info.Pieces)%20 != 0 || int64(len(info.Pieces)/20) != (info.Length+info.PieceLength-1)/info.PieceLength {
		return nil, fmt.Errorf("metainfo: %d bytes of piece hashes for %d bytes in %d-byte pieces", len(info.Pieces), info.Length, info.PieceLength)
	}
	return &Torrent{MI: mi, Info: info, InfoHash: mi.HashInfoBytes()}, nil
}

// CheckInfoHash refuses a torrent whose infohash is not want (hex, as signed in the job);
// "" accepts any.
func (t *Torrent) CheckInfoHash(want string) error {
	if want == "" {
		return nil
	}
	w, err := hex.DecodeString(strings.ToLower(want))
	if err != nil || len(w) != len(t.InfoHash) {
		return fmt.Errorf("info hash %q is not 40 hex digits", want)
	}
	if !bytes.Equal(w, t.InfoHash[:]) {
		return fmt.Errorf("metainfo's info hash is %s, the job's %s", t.InfoHash.HexString(), strings.ToLower(want))
	}
	return nil
}

// Load reads a metainfo from an http(s) URL or a file and parses it.
func Load(ctx context.Context, spec string, client *http.Client) (*Torrent, error) {
	var r io.Reader
	if strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://") {
		if client == nil {
			client = http.DefaultClient
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec, nil)
		if err != nil {
			return nil, fmt.Errorf("torrent %s: %w", spec, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("torrent: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("torrent %s: HTTP %s", spec, resp.Status)
		}
		r = resp.Body
	} else {
		f, err := os.Open(spec)
		if err != nil {
			return nil, fmt.Errorf("torrent: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxMetainfo+1))
	if err != nil {
		return nil, fmt.Errorf("torrent %s: %w", spec, err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("torrent %s: %w", spec, err)
	}
	return t, nil
}
