package target

import (
	"bytes"
	"fmt"
	"io"
)

// WriteAll writes b at off, splitting an unaligned tail off so that the bulk still goes
// O_DIRECT.
func (t *Target) WriteAll(b []byte, off int64) error {
	al := len(b) &^ (Align - 1)
	for _, part := range [][]byte{b[:al], b[al:]} {
		if len(part) == 0 {
			continue
		}
		n, err := t.WriteAt(part, off)
		if err == nil && n != len(part) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return fmt.Errorf("write at byte %d: %w", off, err)
		}
		off += int64(n)
	}
	return nil
}

// Commit writes b, bytes of the image held back until the rest was durable, at off and syncs
// them; with verify it reads them back. what names them in errors ("first MiB").
func (t *Target) Commit(b []byte, off int64, verify bool, what string) error {
	if len(b) == 0 {
		return nil
	}
	if err := t.WriteAll(b, off); err != nil {
		return err
	}
	if err := t.Sync(off + int64(len(b))); err != nil {
		return err
	}
	if !verify {
		return nil
	}
	back := AlignedBuffer(len(b))
	al := len(b) &^ (Align - 1)
	if off%Align != 0 {
		al = 0 // an unaligned offset cannot go O_DIRECT: read it all through the cache
	}
	for _, r := range [][2]int{{0, al}, {al, len(b)}} {
		if r[1] == r[0] {
			continue
		}
		if m, err := t.ReadAt(back[r[0]:r[1]], off+int64(r[0])); m != r[1]-r[0] {
			return fmt.Errorf("read-back of the %s: %w", what, errOr(err, io.ErrUnexpectedEOF))
		}
	}
	if !bytes.Equal(back, b) {
		return fmt.Errorf("read-back of the %s differs from the image", what)
	}
	return nil
}

// WipeTables leaves no partition table behind, so that a target whose flash failed cannot
// boot half an image and netboots again: the first held bytes, and on a device the last
// ones too, where a backup GPT would let firmware recover the table (an image as large as
// the device puts one there).
func (t *Target) WipeTables(held int64) error {
	err := t.Wipe(0, held)
	if err == nil && t.Bounded() && t.Size() > held {
		err = t.Wipe(t.Size()-held, held)
	}
	return err
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}
