package flash

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

func TestProgressSnapshot(t *testing.T) {
	p := newProgress(nil, 0)
	if p.interval != 250*time.Millisecond {
		t.Fatalf("default interval %v", p.interval)
	}
	p.start(1000, nil)
	t0 := p.started
	// The first snapshot of a phase starts its rate.
	if s := p.snapshot(t0); s.Rate != 0 || s.Written != 0 {
		t.Fatalf("phase start %+v", s)
	}
	p.add(100)
	if s := p.snapshot(t0.Add(time.Second)); s.Phase != "write" || s.Written != 100 || s.Total != 1000 || s.Rate != 100 || s.ETA != 9*time.Second {
		t.Fatalf("first snapshot %+v", s)
	}
	p.add(200)
	// Smoothed: 0.7*100 + 0.3*200.
	if s := p.snapshot(t0.Add(2 * time.Second)); s.Rate != 130 {
		t.Fatalf("smoothed rate %v, want 130", s.Rate)
	}
	// A new phase restarts the count and the rate.
	p.set("verify", 0)
	if s := p.snapshot(t0.Add(3 * time.Second)); s.Phase != "verify" || s.Written != 0 || s.Rate != 0 || s.ETA != 0 {
		t.Fatalf("after the phase change %+v", s)
	}
}

// TestProgressFinishDoesNotWait: the final report comes at once (it used to sleep up to an
// interval so as to keep the spacing), with the average rate over the whole flash.
func TestProgressFinishDoesNotWait(t *testing.T) {
	var got []Progress
	p := newProgress(func(pr Progress) { got = append(got, pr) }, time.Hour)
	p.start(0, nil)
	p.add(4096)
	begin := time.Now()
	p.finish(4096)
	if el := time.Since(begin); el > 100*time.Millisecond {
		t.Fatalf("finish took %v", el)
	}
	if len(got) != 1 {
		t.Fatalf("%d reports, want the final one: %+v", len(got), got)
	}
	if f := got[0]; f.Phase != "done" || f.Written != 4096 || f.Total != 4096 || f.Rate <= 0 || f.ETA != 0 {
		t.Fatalf("final report %+v", f)
	}
	p.halt() // again: harmless
}

// TestErrorsKeepTheirChain: the flash's errors wrap their causes, so that callers can use
// errors.Is (a missing source, an interrupted flash) instead of reading the message.
func TestErrorsKeepTheirChain(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "d")
	_, err := Write(context.Background(), Options{Source: filepath.Join(t.TempDir(), "missing.img"), Target: dst})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing source: %v is not fs.ErrNotExist", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	img := testImage(8<<20, 3)
	_, err = Write(ctx, Options{Source: writeFile(t, "img", img), Target: dst, BufferSize: 1 << 20,
		Hold: func(context.Context) error { cancel(); return ctx.Err() }})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled flash: %v is not context.Canceled", err)
	}
}
