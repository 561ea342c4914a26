package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/flashline/flashline/protocol"
)

// Plant is the store of a line whose results go to the plant's PostgreSQL database, shared
// by several lines. The line keeps its own SQLite file, written first as with the sqlite
// driver: every change commits there (fsync'd) together with its entry in an outbox, and a
// forwarder delivers the outbox to PostgreSQL in order, many entries per transaction, and
// removes them once PostgreSQL has committed them (synchronous_commit on). Whatever the
// line decides for a device (its job, its boot mode) it decides from its own file, so the
// plant network or database being down never holds a device: the changes wait in the
// outbox and go out when PostgreSQL is back. A final result waits (up to AckWait) for its
// delivery before it is acknowledged while PostgreSQL is reachable, so that normally an
// acknowledged result is already in the plant database.
//
// Reads of the line's own devices come from its file; other lines and the whole plant
// (history of a serial, export, figures) from PostgreSQL, falling back to the line's file
// when it cannot be reached.
type Plant struct {
	*Store // the line's own database and outbox
	o      PlantOptions
	log    *slog.Logger
	kick   chan struct{}
	stop   context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	pg        *Store // nil until connected
	reachable bool
	lastErr   string
	lastDeliv time.Time
	sent      int64         // the newest outbox entry delivered
	advanced  chan struct{} // closed (and replaced) when sent advances or reachable changes
}

// PlantOptions configures OpenPlant.
type PlantOptions struct {
	Path string // the line's SQLite file (its database and outbox)
	DSN  string // the plant's PostgreSQL database
	Line string
	// AckWait bounds how long a final result waits for the plant database before it is
	// acknowledged from the outbox alone (default 5s). No wait while it is unreachable.
	AckWait time.Duration
	// Retry is the pause after a failed delivery (default 1s, doubling up to 10s).
	Retry  time.Duration
	Logger *slog.Logger
}

// batchSize bounds the outbox entries delivered in one PostgreSQL transaction.
const batchSize = 256

// OpenPlant opens the line's file and the plant database and starts delivering. A plant
// database that cannot be reached now is not an error (the line starts, the outbox fills);
// one with a newer schema than this server knows is.
func OpenPlant(ctx context.Context, o PlantOptions) (*Plant, error) {
	if o.Line == "" {
		return nil, errors.New("open plant store: a line name is needed (config line:) so that lines sharing the database can be told apart")
	}
	if o.AckWait <= 0 {
		o.AckWait = 5 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	local, err := openSQLite(ctx, o.Path, Options{Line: o.Line})
	if err != nil {
		return nil, err
	}
	local.queue = true
	p := &Plant{Store: local, o: o, log: o.Logger, kick: make(chan struct{}, 1), done: make(chan struct{}), advanced: make(chan struct{})}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = p.connect(cctx)
	cancel()
	if errors.Is(err, ErrSchemaTooNew) {
		local.Close()
		return nil, err
	}
	if err != nil {
		p.log.Warn("plant database unreachable: results are queued in the line's file until it is back", "err", err)
	}
	rctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	go p.run(rctx)
	return p, nil
}

func (p *Plant) connect(ctx context.Context) error {
	pg, err := OpenOptions(ctx, Options{Driver: DriverPostgres, DSN: p.o.DSN, Line: p.o.Line})
	if err != nil {
		p.setReachable(false, err)
		return err
	}
	p.mu.Lock()
	p.pg = pg
	p.mu.Unlock()
	p.setReachable(true, nil)
	return nil
}

func (p *Plant) plant() *Store {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pg
}

func (p *Plant) setReachable(up bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if up != p.reachable {
		if up {
			p.log.Info("plant database reachable")
		} else {
			p.log.Warn("plant database unreachable: changes wait in the line's outbox", "err", err)
		}
		close(p.advanced)
		p.advanced = make(chan struct{})
	}
	p.reachable = up
	p.lastErr = ""
	if err != nil {
		p.lastErr = err.Error()
	}
}

// Close stops delivering and closes both databases. What is still queued goes out after the
// next start.
func (p *Plant) Close() error {
	p.stop()
	<-p.done
	// A last delivery, so that a command's change (a reset) does not wait for the next start.
	p.mu.Lock()
	up := p.reachable
	p.mu.Unlock()
	if up {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		p.deliverAll(ctx)
		cancel()
	}
	var errs []error
	if pg := p.plant(); pg != nil {
		errs = append(errs, pg.Close())
	}
	errs = append(errs, p.Store.Close())
	return errors.Join(errs...)
}

func (p *Plant) nudge() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run delivers the outbox until ctx ends: when told of a change, and every few seconds.
func (p *Plant) run(ctx context.Context) {
	defer close(p.done)
	pause := p.o.Retry
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		err := p.deliverAll(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := time.Duration(0)
		if err != nil {
			p.setReachable(false, err)
			wait, pause = pause, min(2*pause, 10*time.Second)
		} else {
			pause = p.o.Retry
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-tick.C:
		}
	}
}

// deliverAll delivers batches until the outbox is empty or the plant database fails.
func (p *Plant) deliverAll(ctx context.Context) error {
	pg := p.plant()
	if pg == nil {
		if err := p.connect(ctx); err != nil {
			return err
		}
		pg = p.plant()
	}
	for {
		batch, err := p.Store.pending(ctx, batchSize)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		if err := p.deliver(ctx, pg, batch); err != nil {
			return err
		}
	}
}

// deliver sends batch in one transaction. When PostgreSQL refuses it while reachable, the
// entries go one by one and the one refused is set aside, so one bad entry cannot stop the
// line's queue.
func (p *Plant) deliver(ctx context.Context, pg *Store, batch []queued) error {
	ops := coalesce(batch)
	err := pg.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range ops {
			if err := pg.apply(ctx, tx, q.op); err != nil {
				return fmt.Errorf("outbox entry %d (%s): %w", q.seq, q.op.Kind, err)
			}
		}
		return nil
	})
	if err == nil {
		return p.done1(ctx, batch)
	}
	if ctx.Err() != nil || pg.w.PingContext(ctx) != nil {
		return err
	}
	for _, q := range batch {
		err := pg.tx(ctx, func(tx *sql.Tx) error { return pg.apply(ctx, tx, q.op) })
		if err == nil {
			if err := p.done1(ctx, []queued{q}); err != nil {
				return err
			}
			continue
		}
		if ctx.Err() != nil || pg.w.PingContext(ctx) != nil {
			return err
		}
		p.log.Error("plant database refused a change; it is kept in the outbox, not retried", "seq", q.seq, "kind", q.op.Kind, "err", err)
		if err := p.Store.refused(ctx, q.seq, err); err != nil {
			return err
		}
	}
	return nil
}

// coalesce merges the event batches of a run that follow each other in batch (nothing else
// of that run in between) into one change: most of the queue is events, and each change
// costs the plant database a few round trips whatever its size.
func coalesce(batch []queued) []queued {
	out := make([]queued, 0, len(batch))
	open := map[string]int{} // run -> index in out of its events change still open to merging
	for _, q := range batch {
		if q.op.Kind != opEvents {
			delete(open, q.op.RunID)
			if q.op.Run != nil {
				delete(open, q.op.Run.RunID)
			}
			if q.op.Result != nil {
				delete(open, q.op.Result.RunID)
			}
			out = append(out, q)
			continue
		}
		if i, ok := open[q.op.RunID]; ok && out[i].op.Serial == q.op.Serial {
			m := out[i].op
			m.Events = append(append([]protocol.Event(nil), m.Events...), q.op.Events...)
			m.At = max(m.At, q.op.At)
			out[i].op = m
			continue
		}
		open[q.op.RunID] = len(out)
		out = append(out, q)
	}
	return out
}

func (p *Plant) done1(ctx context.Context, batch []queued) error {
	seqs := make([]int64, len(batch))
	for i, q := range batch {
		seqs[i] = q.seq
	}
	if err := p.Store.delivered(ctx, seqs); err != nil {
		return err
	}
	p.mu.Lock()
	p.sent = max(p.sent, seqs[len(seqs)-1])
	p.lastDeliv = time.Now()
	close(p.advanced)
	p.advanced = make(chan struct{})
	p.mu.Unlock()
	p.setReachable(true, nil)
	return nil
}

// waitSent waits until the entry seq is delivered, the plant database is found unreachable,
// AckWait passes or ctx ends.
func (p *Plant) waitSent(ctx context.Context, seq int64) {
	timeout := time.NewTimer(p.o.AckWait)
	defer timeout.Stop()
	for {
		p.mu.Lock()
		sent, up, ch := p.sent, p.reachable, p.advanced
		p.mu.Unlock()
		if sent >= seq || !up {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// StartRun records the run on the line and queues it for the plant.
func (p *Plant) StartRun(ctx context.Context, n NewRun) error {
	err := p.Store.StartRun(ctx, n)
	p.nudge()
	return err
}

// AddEvents stores the events on the line and queues them for the plant.
func (p *Plant) AddEvents(ctx context.Context, runID, serial string, evs []protocol.Event) (EventsAck, error) {
	ack, err := p.Store.AddEvents(ctx, runID, serial, evs)
	p.nudge()
	return ack, err
}

// PutResult stores the result on the line (durable at once) and, while the plant database is
// reachable, waits up to AckWait for it to be delivered there too.
func (p *Plant) PutResult(ctx context.Context, res protocol.Result) (bool, error) {
	dup, err := p.Store.PutResult(ctx, res)
	if err != nil || dup {
		return dup, err
	}
	p.nudge()
	p.waitSent(ctx, p.Store.queued.get())
	return false, nil
}

// RecordReboot records on the line and queues for the plant.
func (p *Plant) RecordReboot(ctx context.Context, mac string, at time.Time, within time.Duration) (string, time.Duration, error) {
	id, d, err := p.Store.RecordReboot(ctx, mac, at, within)
	if id != "" {
		p.nudge()
	}
	return id, d, err
}

// ResetDevice resets on the line and queues for the plant.
func (p *Plant) ResetDevice(ctx context.Context, mac string) error {
	err := p.Store.ResetDevice(ctx, mac)
	p.nudge()
	return err
}

// ResetDeviceBy resets on the line with its audit entry and queues both for the plant.
func (p *Plant) ResetDeviceBy(ctx context.Context, mac, actor, detail string) error {
	err := p.Store.ResetDeviceBy(ctx, mac, actor, detail)
	p.nudge()
	return err
}

// Backlog reports the outbox and the plant database's state.
func (p *Plant) Backlog(ctx context.Context) (Backlog, error) {
	b, err := p.Store.Backlog(ctx)
	if err != nil {
		return b, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b.Reachable, b.LastError = p.reachable, p.lastErr
	if !p.lastDeliv.IsZero() {
		t := p.lastDeliv.UTC()
		b.LastDelivery = &t
	}
	return b, nil
}

// Line is the line this store runs.
func (p *Plant) Line() string { return p.o.Line }

// plantRead runs read on the plant database, or on the line's file when that cannot be
// reached.
func plantRead[T any](ctx context.Context, p *Plant, read func(s *Store) (T, error)) (T, error) {
	if pg := p.plant(); pg != nil {
		v, err := read(pg)
		if err == nil || errors.Is(err, ErrNotFound) {
			return v, err
		}
		p.log.Warn("plant database read failed; answering from the line's own results", "err", err)
	}
	return read(p.Store)
}

// DevicesOn lists one line's devices (the line's own from its file) or every line's.
func (p *Plant) DevicesOn(ctx context.Context, line string, since time.Time, limit int) ([]Device, error) {
	if line == p.o.Line {
		return p.Store.DevicesOn(ctx, line, since, limit)
	}
	return plantRead(ctx, p, func(s *Store) ([]Device, error) { return s.DevicesOn(ctx, line, since, limit) })
}

// History is a serial's history on every line of the plant.
func (p *Plant) History(ctx context.Context, serial string, opt HistoryOptions) ([]RunDetail, error) {
	return plantRead(ctx, p, func(s *Store) ([]RunDetail, error) { return s.History(ctx, serial, opt) })
}

// ExportJSON exports a serial's history on every line of the plant.
func (p *Plant) ExportJSON(ctx context.Context, w io.Writer, serial string) error {
	_, err := plantRead(ctx, p, func(s *Store) (struct{}, error) { return struct{}{}, s.ExportJSON(ctx, w, serial) })
	return err
}

// ExportCSV exports a serial's history on every line of the plant.
func (p *Plant) ExportCSV(ctx context.Context, w io.Writer, serial string) error {
	_, err := plantRead(ctx, p, func(s *Store) (struct{}, error) { return struct{}{}, s.ExportCSV(ctx, w, serial) })
	return err
}

// Figures are the line's own (from its file) or other lines' and the plant's.
func (p *Plant) Figures(ctx context.Context, f FiguresFilter) (Figures, error) {
	if f.Line == p.o.Line {
		return p.Store.Figures(ctx, f)
	}
	return plantRead(ctx, p, func(s *Store) (Figures, error) { return s.Figures(ctx, f) })
}

// ExportRuns exports the line's own runs (from its file) or other lines' and the plant's.
func (p *Plant) ExportRuns(ctx context.Context, w io.Writer, f FiguresFilter, format string) error {
	if f.Line == p.o.Line {
		return p.Store.ExportRuns(ctx, w, f, format)
	}
	_, err := plantRead(ctx, p, func(s *Store) (struct{}, error) { return struct{}{}, s.ExportRuns(ctx, w, f, format) })
	return err
}
