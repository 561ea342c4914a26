package netquiet

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	g := New()
	ctx := context.Background()
	if err := g.Wait(ctx); err != nil || g.Waits() != 0 {
		t.Fatalf("open gate: Wait = %v, waits %d", err, g.Waits())
	}
	r1 := g.Quiet()
	r2 := g.Quiet()
	done := make(chan error, 1)
	go func() { done <- g.Wait(ctx) }()
	r1()
	r1() // a second release of the same hold must not open the gate for the other holder
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v while a holder still keeps the gate quiet", err)
	case <-time.After(50 * time.Millisecond):
	}
	if !g.Quieted() {
		t.Fatal("not quiet with one holder left")
	}
	r2()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("Wait did not return once every holder released")
	}
	if g.Quieted() || g.Waits() != 1 {
		t.Fatalf("quiet %v, waits %d", g.Quieted(), g.Waits())
	}

	// Quiet again after opening: a fresh hold blocks again; ctx ends the wait.
	release := g.Quiet()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := g.Wait(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a quiet gate with an ending ctx = %v", err)
	}
	release()

	var nilGate *Gate
	nilGate.Quiet()()
	if err := nilGate.Wait(ctx); err != nil || nilGate.Quieted() {
		t.Fatal("a nil gate must be open")
	}
}
