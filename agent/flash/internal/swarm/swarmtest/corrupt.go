package swarmtest

import (
	"context"
	"io"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// corrupt is a storage that has every piece, each with one byte flipped.
type corrupt struct{ data []byte }

func (c *corrupt) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	return storage.TorrentImpl{
		Piece: func(p metainfo.Piece) storage.PieceImpl {
			return &corruptPiece{data: c.data[p.Offset() : p.Offset()+p.Length()]}
		},
		Close: func() error { return nil },
	}, nil
}

type corruptPiece struct{ data []byte }

func (p *corruptPiece) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(p.data)) {
		return 0, io.EOF
	}
	n := copy(b, p.data[off:])
	for i := range n {
		if (off+int64(i))%(16<<10) == 100 {
			b[i] ^= 0x55 // one byte in every 16 KiB block
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (p *corruptPiece) WriteAt(b []byte, off int64) (int, error) { return len(b), nil }
func (p *corruptPiece) MarkComplete() error                      { return nil }
func (p *corruptPiece) MarkNotComplete() error                   { return nil }
func (p *corruptPiece) Completion() storage.Completion {
	return storage.Completion{Ok: true, Complete: true}
}
