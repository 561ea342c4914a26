package swarm

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
)

type failingSpool struct{}

func (failingSpool) WriteAt([]byte, int64) (int, error) { return 0, errors.New("disk gone") }
func (failingSpool) ReadAt([]byte, int64) (int, error)  { return 0, errors.New("disk gone") }

type bufSpool struct{ b []byte }

func (s *bufSpool) WriteAt(p []byte, off int64) (int, error) { return copy(s.b[off:], p), nil }
func (s *bufSpool) ReadAt(p []byte, off int64) (int, error)  { return copy(p, s.b[off:]), nil }

// TestWindowSpool: pieces let go of move to the spool while it has room and works, stay
// complete and readable there, and are dropped (no longer complete) otherwise.
func TestWindowSpool(t *testing.T) {
	const pl = 16
	const n = 8
	info := &metainfo.Info{PieceLength: pl, Length: pl*n - 5, Pieces: make([]byte, 20*n)}
	for _, tc := range []struct {
		name     string
		spool    Spool
		capacity int64
		kept     func(i int) bool // behind the window: is piece i still served
	}{
		{"no spool", nil, 0, func(int) bool { return false }},
		{"room for all", &bufSpool{b: make([]byte, pl*n)}, pl*n - 5, func(int) bool { return true }},
		{"room for three", &bufSpool{b: make([]byte, pl*n)}, 3 * pl, func(i int) bool { return i < 3 }},
		{"failing", failingSpool{}, pl * n, func(int) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWindow(2 * pl)
			ti, err := w.OpenTorrent(context.Background(), info, metainfo.Hash{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.spool != nil {
				w.setSpool(tc.spool, tc.capacity)
			}
			var dropped []int
			w.dropped = func(i int) { dropped = append(dropped, i) }
			want := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, int(info.Piece(i).Length())) }
			for i := range n {
				w.setReadPos(int64(i) * pl)
				p := ti.Piece(info.Piece(i))
				if _, err := p.WriteAt(want(i), 0); err != nil {
					t.Fatalf("piece %d: %v", i, err)
				}
				if err := p.MarkComplete(); err != nil {
					t.Fatal(err)
				}
			}
			held, maxHeld := w.stats()
			if maxHeld > 2*pl || held > 2*pl {
				t.Errorf("memory held %d, at most %d, window %d", held, maxHeld, 2*pl)
			}
			for i := range n - 2 { // the last two are in memory
				p := ti.Piece(info.Piece(i))
				got := make([]byte, info.Piece(i).Length())
				_, rerr := p.ReadAt(got, 0)
				if c := p.Completion(); c.Complete != tc.kept(i) {
					t.Errorf("piece %d complete %v, want %v", i, c.Complete, tc.kept(i))
				}
				if tc.kept(i) && (rerr != nil || !bytes.Equal(got, want(i))) {
					t.Errorf("piece %d from the spool: %q, %v", i, got, rerr)
				}
				if !tc.kept(i) && rerr == nil {
					t.Errorf("piece %d read though it was dropped", i)
				}
			}
			_, serr := w.spoolStats()
			if _, failing := tc.spool.(failingSpool); failing != (serr != nil) {
				t.Errorf("spool error %v", serr)
			}
			for _, i := range dropped {
				if tc.kept(i) {
					t.Errorf("piece %d reported dropped though spooled", i)
				}
			}
		})
	}
}
