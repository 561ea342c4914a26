package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// errNotHeld is a read of a piece the window has dropped (or never had): the library
// rejects a peer's request for it, and the reader never asks, since it only moves forward.
var errNotHeld = errors.New("piece not in the memory window")

// errFull is a write to a new piece while every held piece is still ahead of the reader.
// The readahead keeps the library from asking for that; should a peer send an unrequested
// block anyway, it is dropped and fetched again later.
var errFull = errors.New("memory window full")

// Spool is where the pieces the memory window lets go of live on, so that the device
// serves every piece it has read, not only the last few MiB: the region of the target disk
// after the image, or a scratch file. Piece i is at i x piece length.
type Spool interface {
	io.ReaderAt
	io.WriterAt
}

// window is a torrent storage that holds at most limit bytes of pieces in memory, the
// pieces around the reader's position: those ahead of it being downloaded, those behind it
// kept for peers behind this device. When room is needed the oldest behind the reader move
// to the spool, when there is one and it has room, and are dropped otherwise. The image
// streams through it into the flash pipeline, so memory stays bounded whatever the image's
// size, and while it downloads the device serves what it has.
type window struct {
	info  *metainfo.Info
	limit int64

	mu        sync.Mutex
	pieces    map[int]*heldPiece
	held      int64 // bytes allocated to pieces
	maxHeld   int64
	readPiece int // the reader's piece: only pieces before it may be dropped
	spool     Spool
	spoolCap  int64        // bytes the spool may take from its start
	spooled   map[int]bool // complete pieces that live in the spool
	spoolErr  error        // the first spool write that failed; the spool is off since
	// dropped is told (without the lock) about a complete piece that was dropped, so the
	// library asks the storage again and stops offering it.
	dropped func(piece int)
}

type heldPiece struct {
	b        []byte
	complete bool
}

func newWindow(limit int64) *window {
	return &window{limit: limit, pieces: make(map[int]*heldPiece), spooled: make(map[int]bool)}
}

// setSpool gives the window a spool of capacity bytes: the complete pieces it drops from
// then on that fit go there instead.
func (w *window) setSpool(s Spool, capacity int64) {
	w.mu.Lock()
	w.spool, w.spoolCap = s, capacity
	w.mu.Unlock()
}

// spoolStats reports the bytes in the spool and the spool's failure, if any.
func (w *window) spoolStats() (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for i := range w.spooled {
		n += w.info.Piece(i).Length()
	}
	return n, w.spoolErr
}

// toSpool moves a complete piece's bytes to the spool; false when it cannot (no spool, no
// room, a write failed). Called with w.mu held: a piece is a page-cache write.
func (w *window) toSpool(i int, b []byte) bool {
	if w.spool == nil || w.spoolErr != nil {
		return false
	}
	off := int64(i) * w.info.PieceLength
	if off+int64(len(b)) > w.spoolCap {
		return false
	}
	if _, err := w.spool.WriteAt(b, off); err != nil {
		w.spoolErr = fmt.Errorf("spool piece %d: %w", i, err)
		return false
	}
	w.spooled[i] = true
	return true
}

// OpenTorrent implements storage.ClientImpl.
func (w *window) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	w.info = info
	// No storage Capacity is declared: with one, v1.59.1's reader retries a read that its
	// context ended without end (a stack overflow once the swarm stalls). The bound holds
	// all the same: the library asks only for the reader's readahead (half the window) and
	// a write that finds no room fails.
	return storage.TorrentImpl{
		Piece: func(p metainfo.Piece) storage.PieceImpl {
			return &windowPiece{w: w, i: p.Index(), length: p.Length()}
		},
		PieceWithHash: func(p metainfo.Piece, _ g.Option[[]byte]) storage.PieceImpl {
			return &windowPiece{w: w, i: p.Index(), length: p.Length()}
		},
		Close: func() error { return nil },
	}, nil
}

// setReadPos tells the window where the reader is.
func (w *window) setReadPos(off int64) {
	w.mu.Lock()
	w.readPiece = int(off / w.info.PieceLength)
	w.mu.Unlock()
}

// stats reports the bytes held now and at most.
func (w *window) stats() (held, maxHeld int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held, w.maxHeld
}

// firstMissing is the first piece from the reader's on that is neither held complete nor
// spooled; -1 when there is none.
func (w *window) firstMissing() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.info == nil {
		return -1
	}
	for i := w.readPiece; i < w.info.NumPieces(); i++ {
		if h := w.pieces[i]; (h == nil || !h.complete) && !w.spooled[i] {
			return i
		}
	}
	return -1
}

// alloc returns piece i's buffer, making room by dropping the oldest pieces behind the
// reader. Called with w.mu held; the dropped complete pieces are returned to report.
func (w *window) alloc(i int, length int64) (*heldPiece, []int, error) {
	if p := w.pieces[i]; p != nil {
		return p, nil, nil
	}
	var drops []int
	for w.held+length > w.limit {
		victim := -1
		for j := range w.pieces {
			if j < w.readPiece && (victim < 0 || j < victim) {
				victim = j
			}
		}
		if victim < 0 {
			return nil, drops, errFull
		}
		if v := w.pieces[victim]; v.complete && !w.toSpool(victim, v.b) {
			drops = append(drops, victim)
		}
		w.held -= int64(len(w.pieces[victim].b))
		delete(w.pieces, victim)
	}
	p := &heldPiece{b: make([]byte, length)}
	w.pieces[i] = p
	w.held += length
	w.maxHeld = max(w.maxHeld, w.held)
	return p, drops, nil
}

func (w *window) report(drops []int) {
	if w.dropped != nil {
		for _, i := range drops {
			w.dropped(i)
		}
	}
}

// windowPiece is one piece of the window, as the library sees it.
type windowPiece struct {
	w      *window
	i      int
	length int64
}

func (p *windowPiece) ReadAt(b []byte, off int64) (int, error) {
	p.w.mu.Lock()
	h := p.w.pieces[p.i]
	if h == nil {
		spool, spooled := p.w.spool, p.w.spooled[p.i]
		p.w.mu.Unlock()
		if !spooled {
			return 0, errNotHeld
		}
		return p.readSpool(spool, b, off)
	}
	defer p.w.mu.Unlock()
	if off >= int64(len(h.b)) {
		return 0, io.EOF
	}
	n := copy(b, h.b[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// readSpool reads a spooled piece without the window's lock: a disk read must not hold up
// the downloading pieces.
func (p *windowPiece) readSpool(spool Spool, b []byte, off int64) (int, error) {
	if off >= p.length {
		return 0, io.EOF
	}
	want := b[:min(int64(len(b)), p.length-off)]
	n, err := spool.ReadAt(want, int64(p.i)*p.w.info.PieceLength+off)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(want)) {
		return n, fmt.Errorf("spooled piece %d: %w", p.i, err)
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (p *windowPiece) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > p.length {
		return 0, errors.New("write outside the piece")
	}
	p.w.mu.Lock()
	h, drops, err := p.w.alloc(p.i, p.length)
	if err == nil {
		copy(h.b[off:], b)
	}
	p.w.mu.Unlock()
	p.w.report(drops)
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

func (p *windowPiece) MarkComplete() error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	h := p.w.pieces[p.i]
	if h == nil {
		return errNotHeld
	}
	h.complete = true
	return nil
}

func (p *windowPiece) MarkNotComplete() error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if h := p.w.pieces[p.i]; h != nil {
		h.complete = false
	}
	delete(p.w.spooled, p.i)
	return nil
}

func (p *windowPiece) Completion() storage.Completion {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	h := p.w.pieces[p.i]
	// Always known: a fresh window holds nothing, so nothing needs hashing at the start.
	return storage.Completion{Ok: true, Complete: h != nil && h.complete || p.w.spooled[p.i]}
}
