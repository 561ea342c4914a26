// Package report sends a run's events to the line server live, in batches, without ever
// blocking the journey: events are numbered, queued, flushed in the background and re-sent
// until acknowledged (the server keeps each sequence number once). Flash progress is coalesced
// so a slow or absent server costs memory for at most one pending progress event.
package report

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/protocol"
)

// Poster sends a batch and returns the highest acknowledged sequence number;
// *lineclient.Client is one.
type Poster interface {
	PostEvents(ctx context.Context, b protocol.EventBatch) (int64, error)
}

// maxPending bounds the events kept for re-sending when the server is away; beyond it the
// oldest log events are dropped first (phase and step events matter more than log lines).
const maxPending = 4096

// maxBatch is the largest batch sent in one request.
const maxBatch = 256

// Reporter queues events of one run and flushes them to the server.
type Reporter struct {
	post   Poster
	runID  string
	serial string
	secret string // the run's secret, sent with every batch
	every  time.Duration
	log    *slog.Logger

	mu      sync.Mutex
	seq     int64
	pending []protocol.Event // not yet acknowledged, in Seq order
	sent    int64            // highest Seq put into a request; those must not change any more
	kick    chan struct{}
	done    chan struct{}
	stop    context.CancelFunc
	now     func() time.Time
}

// New starts a reporter that flushes at least every interval (and sooner when events queue
// up). Close flushes what is left. The batches carry no run secret: use NewAuthenticated
// for a server that issued one.
func New(p Poster, runID, serial string, interval time.Duration, log *slog.Logger) *Reporter {
	return NewAuthenticated(p, runID, serial, "", interval, log)
}

// NewAuthenticated is New for a run whose server issued secret: every batch carries it.
func NewAuthenticated(p Poster, runID, serial, secret string, interval time.Duration, log *slog.Logger) *Reporter {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reporter{post: p, runID: runID, serial: serial, secret: secret, every: interval, log: log,
		kick: make(chan struct{}, 1), done: make(chan struct{}), stop: cancel, now: time.Now}
	go r.loop(ctx)
	return r
}

// Emit queues ev (Seq and Time are filled in). It never blocks on the network.
func (r *Reporter) Emit(ev protocol.Event) {
	r.mu.Lock()
	if ev.Time.IsZero() {
		ev.Time = r.now()
	}
	// A progress event replaces a still-pending one: only the latest position matters.
	if ev.Kind == protocol.EventProgress {
		if n := len(r.pending); n > 0 && r.pending[n-1].Kind == protocol.EventProgress && r.pending[n-1].Seq > r.sent {
			ev.Seq = r.pending[n-1].Seq
			r.pending[n-1] = ev
			r.mu.Unlock()
			return
		}
	}
	r.seq++
	ev.Seq = r.seq
	r.pending = append(r.pending, ev)
	if len(r.pending) > maxPending {
		r.dropOne()
	}
	urgent := ev.Kind != protocol.EventProgress && ev.Kind != protocol.EventLog
	r.mu.Unlock()
	if urgent {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// dropOne drops the oldest log or progress event, or else the oldest event. Called with mu held.
func (r *Reporter) dropOne() {
	for i, ev := range r.pending {
		if ev.Kind == protocol.EventLog || ev.Kind == protocol.EventProgress {
			r.pending = append(r.pending[:i], r.pending[i+1:]...)
			return
		}
	}
	r.pending = r.pending[1:]
}

// Pending is the number of events not yet acknowledged.
func (r *Reporter) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

func (r *Reporter) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
			r.log.Debug("report: flush failed; will retry", "run", r.runID, "err", err)
		}
	}
}

// Flush sends pending events until none are left or a request fails.
func (r *Reporter) Flush(ctx context.Context) error {
	for {
		r.mu.Lock()
		n := min(len(r.pending), maxBatch)
		batch := append([]protocol.Event(nil), r.pending[:n]...)
		if n > 0 {
			r.sent = max(r.sent, batch[n-1].Seq)
		}
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		acked, err := r.post.PostEvents(ctx, protocol.EventBatch{RunID: r.runID, Serial: r.serial, Events: batch, Secret: r.secret})
		if err != nil {
			return err
		}
		r.mu.Lock()
		i := 0
		for i < len(r.pending) && r.pending[i].Seq <= acked {
			i++
		}
		r.pending = r.pending[i:]
		r.mu.Unlock()
		if i == 0 {
			// The server acknowledged nothing new: do not spin.
			return nil
		}
	}
}

// Close stops the background loop and makes a last attempt, bounded by ctx, to deliver what
// is pending. It returns the number of events that could not be delivered.
func (r *Reporter) Close(ctx context.Context) int {
	r.stop()
	<-r.done
	b := lineclient.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second}
	for r.Pending() > 0 {
		if err := r.Flush(ctx); err == nil && r.Pending() == 0 {
			break
		}
		if lineclient.Sleep(ctx, b.Next()) != nil {
			break
		}
	}
	return r.Pending()
}
