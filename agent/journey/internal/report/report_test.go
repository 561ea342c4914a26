package report

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
)

// fakeServer keeps each sequence number once, like the real server, and can be made to fail.
type fakeServer struct {
	mu      sync.Mutex
	fail    int // fail this many next requests
	got     map[int64]protocol.Event
	batches int
}

func (f *fakeServer) PostEvents(ctx context.Context, b protocol.EventBatch) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches++
	if f.fail > 0 {
		f.fail--
		return 0, errors.New("connection refused")
	}
	var max int64
	for _, ev := range b.Events {
		if _, ok := f.got[ev.Seq]; !ok {
			f.got[ev.Seq] = ev
		}
		max = ev.Seq
	}
	return max, nil
}

func TestReporterDeliversInOrderDespiteFailures(t *testing.T) {
	srv := &fakeServer{fail: 3, got: map[int64]protocol.Event{}}
	r := New(srv, "run-1", "S1", 10*time.Millisecond, nil)
	r.Emit(protocol.Event{Kind: protocol.EventPhase, Phase: "scenario", Status: protocol.StatusRunning})
	for i := int64(1); i <= 100; i++ {
		r.Emit(protocol.Event{Kind: protocol.EventProgress, Done: i, Total: 100})
	}
	r.Emit(protocol.Event{Kind: protocol.EventStep, Step: "wifi", Status: protocol.StatusPass})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if left := r.Close(ctx); left != 0 {
		t.Fatalf("%d events undelivered", left)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	// The 100 progress events were coalesced while undelivered: at most a few reach the server,
	// and the last one says 100/100.
	var progress []protocol.Event
	for seq := int64(1); seq <= int64(len(srv.got)); seq++ {
		ev, ok := srv.got[seq]
		if !ok {
			t.Fatalf("seq %d missing; got %d events", seq, len(srv.got))
		}
		if ev.Kind == protocol.EventProgress {
			progress = append(progress, ev)
		}
	}
	if len(progress) == 0 || progress[len(progress)-1].Done != 100 {
		t.Fatalf("progress events %+v", progress)
	}
	last := srv.got[int64(len(srv.got))]
	if last.Kind != protocol.EventStep || last.Step != "wifi" {
		t.Fatalf("last event %+v", last)
	}
}

func TestReporterBoundsMemoryWhenServerIsGone(t *testing.T) {
	srv := &fakeServer{fail: 1 << 30, got: map[int64]protocol.Event{}}
	r := New(srv, "run-1", "S1", time.Hour, nil)
	r.Emit(protocol.Event{Kind: protocol.EventPhase, Phase: "boot"})
	for i := 0; i < maxPending*2; i++ {
		r.Emit(protocol.Event{Kind: protocol.EventLog, Message: "x"})
	}
	if p := r.Pending(); p > maxPending {
		t.Fatalf("pending %d > %d", p, maxPending)
	}
	r.mu.Lock()
	first := r.pending[0]
	r.mu.Unlock()
	if first.Kind != protocol.EventPhase {
		t.Fatalf("the phase event was dropped before log lines: first is %+v", first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if left := r.Close(ctx); left == 0 {
		t.Fatal("Close reported delivery to a dead server")
	}
}
