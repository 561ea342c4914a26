package flash

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCommitGate: with Commit set, the image is written but the first MiB only once Commit
// returns nil; an error from it fails the flash and leaves no partition table.
func TestCommitGate(t *testing.T) {
	img := testImage(4<<20, 21)
	for _, tc := range []struct {
		name    string
		verdict error
	}{
		{"committed when the tests pass", nil},
		{"wiped when a step failed", errors.New(`step "Wi-Fi" failed`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := writeFile(t, "disk", bytes.Repeat([]byte{0xee}, 5<<20))
			var seenHead atomic.Bool
			_, err := Write(context.Background(), Options{Source: writeFile(t, "img", compress(t, "zstd", img)), Target: dst, SHA256: sum(img),
				Commit: func(ctx context.Context) error {
					// Everything but the held-back first MiB is on the target already.
					got := readFile(t, dst)
					seenHead.Store(bytes.Equal(got[:HoldBack], img[:HoldBack]))
					if !bytes.Equal(got[HoldBack:len(img)], img[HoldBack:]) {
						t.Error("the image past the first MiB is not written when Commit is asked")
					}
					return tc.verdict
				}})
			if seenHead.Load() {
				t.Error("the first MiB was on the target before Commit returned")
			}
			got := readFile(t, dst)
			if tc.verdict == nil {
				if err != nil || !bytes.Equal(got[:len(img)], img) {
					t.Fatalf("err %v, image written %v", err, bytes.Equal(got[:len(img)], img))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "not committed: step") {
				t.Fatalf("err = %v", err)
			}
			if !bytes.Equal(got[:HoldBack], make([]byte, HoldBack)) {
				t.Error("first MiB not wiped after a refused commit")
			}
		})
	}
}

// TestHoldPausesTheDownload: while Hold blocks nothing more is read; cancelling the context
// while held stops the flash and wipes.
func TestHoldPausesTheDownload(t *testing.T) {
	img := testImage(8<<20, 22)
	// held is closed when the third read asks to go on; release lets it. The test waits for
	// the events themselves, not for a time it guesses they take: on a loaded machine the
	// first two buffers may take any time to get through.
	held, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	var progress atomic.Int64
	dst := writeFile(t, "disk", nil)
	done := make(chan error, 1)
	go func() {
		_, err := Write(context.Background(), Options{Source: writeFile(t, "img", img), Target: dst, SHA256: sum(img), BufferSize: 1 << 20,
			ProgressInterval: time.Millisecond,
			Progress:         func(p Progress) { progress.Store(p.Written) },
			Hold: func(ctx context.Context) error {
				if calls.Add(1) == 3 {
					close(held)
					select {
					case <-release:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			}})
		done <- err
	}()
	select {
	case <-held:
	case err := <-done:
		t.Fatalf("flash ended without a third read: %v (%d reads)", err, calls.Load())
	}
	// The reader is one goroutine: while it is held no other read can start, so there are
	// exactly three calls and at most the two buffers read before are handled, however
	// long this takes to look.
	if n := calls.Load(); n != 3 {
		t.Errorf("%d reads asked for while held, want 3", n)
	}
	if w := progress.Load(); w > 2<<20 {
		t.Errorf("%d bytes handled while the third read was held", w)
	}
	select {
	case err := <-done:
		t.Fatalf("flash ended while held: %v", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, dst), img) {
		t.Error("image differs")
	}

	// Cancelled while held: the cancel comes from inside the hold, so the flash is surely
	// held (not still opening its files) when it happens.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dst2 := writeFile(t, "disk2", bytes.Repeat([]byte{0xee}, 9<<20))
	_, err := Write(ctx, Options{Source: writeFile(t, "img", img), Target: dst2, BufferSize: 1 << 20,
		Hold: func(hctx context.Context) error { cancel(); <-hctx.Done(); return hctx.Err() }})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err = %v", err)
	}
	if got := readFile(t, dst2); !bytes.Equal(got[:HoldBack], make([]byte, HoldBack)) {
		t.Error("first MiB not wiped after a cancelled held flash")
	}
}
