package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/flashline/flashline/protocol"
)

// Kinds of the changes the outbox carries.
const (
	opStart  = "start"
	opEvents = "events"
	opResult = "result"
	opReboot = "reboot"
	opReset  = "reset"
)

// op is one change of the line's database, to be made in the plant's too. At is when it was
// made on the line (ms since the epoch): the plant database records the line's times, not
// the time of the delivery.
type op struct {
	Kind       string           `json:"kind"`
	At         int64            `json:"at"`
	Run        *NewRun          `json:"run,omitempty"`
	RunID      string           `json:"run_id,omitempty"`
	Serial     string           `json:"serial,omitempty"`
	Events     []protocol.Event `json:"events,omitempty"`
	Result     *protocol.Result `json:"result,omitempty"`
	MAC        string           `json:"mac,omitempty"`
	DurationMS int64            `json:"duration_ms,omitempty"`
	// Actor and Detail of a reset, for the plant's audit log (ResetDeviceBy).
	Actor  string `json:"actor,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// queued is an outbox entry.
type queued struct {
	seq int64
	op  op
}

// enqueue appends o to the outbox inside tx, when this store keeps one: the change and its
// place in the queue commit together, so nothing is acknowledged that is not queued.
func (s *Store) enqueue(ctx context.Context, tx *sql.Tx, o op) error {
	if !s.queue {
		return nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("queue %s: %w", o.Kind, err)
	}
	runID := o.RunID
	if o.Run != nil {
		runID = o.Run.RunID
	} else if o.Result != nil {
		runID = o.Result.RunID
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO outbox (kind, run_id, at, body) VALUES (?,?,?,?)`, o.Kind, runID, o.At, string(b))
	if err != nil {
		return fmt.Errorf("queue %s: %w", o.Kind, err)
	}
	if seq, err := res.LastInsertId(); err == nil {
		s.queued.setMax(seq)
	}
	return nil
}

// maxSeq is a monotonic high-water mark.
type maxSeq struct{ v atomic.Int64 }

func (m *maxSeq) setMax(v int64) {
	for {
		old := m.v.Load()
		if v <= old || m.v.CompareAndSwap(old, v) {
			return
		}
	}
}

func (m *maxSeq) get() int64 { return m.v.Load() }

// pending returns up to limit undelivered entries, oldest first.
func (s *Store) pending(ctx context.Context, limit int) ([]queued, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, body FROM outbox WHERE failed = '' ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []queued
	for rows.Next() {
		var q queued
		var body string
		if err := rows.Scan(&q.seq, &body); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		if err := json.Unmarshal([]byte(body), &q.op); err != nil {
			return nil, fmt.Errorf("outbox entry %d: %w", q.seq, err)
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// delivered removes entries the plant database has committed.
func (s *Store) delivered(ctx context.Context, seqs []int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, seq := range seqs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE seq = ?`, seq); err != nil {
				return fmt.Errorf("outbox entry %d delivered: %w", seq, err)
			}
		}
		return nil
	})
}

// refused sets an entry aside: the plant database refused it for a reason retrying does not
// cure. It stays in the outbox, counted as failed, for an operator to look at.
func (s *Store) refused(ctx context.Context, seq int64, why error) error {
	_, err := s.w.ExecContext(ctx, `UPDATE outbox SET failed = ? WHERE seq = ?`, why.Error(), seq)
	if err != nil {
		return fmt.Errorf("outbox entry %d refused: %w", seq, err)
	}
	return nil
}

// apply makes o's change in this (the plant's) database inside tx. Every kind is idempotent:
// an entry delivered whose removal from the outbox was lost (a crash in between) is
// delivered again and changes nothing.
func (s *Store) apply(ctx context.Context, tx *sql.Tx, o op) error {
	switch o.Kind {
	case opStart:
		if o.Run == nil {
			return errors.New("start without a run")
		}
		inv, err := json.Marshal(o.Run.Inventory)
		if err != nil {
			return err
		}
		return s.startRun(ctx, tx, *o.Run, string(inv), o.At, true)
	case opEvents:
		evs := append([]protocol.Event(nil), o.Events...)
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
		_, _, err := s.addEvents(ctx, tx, o.RunID, o.Serial, evs, o.At)
		return err
	case opResult:
		if o.Result == nil {
			return errors.New("result without a result")
		}
		_, err := s.putResult(ctx, tx, *o.Result, o.At)
		return err
	case opReboot:
		return insertReboot(ctx, tx, o.RunID, o.DurationMS)
	case opReset:
		// Not over a later change of the device (a result after the reset, delivered again).
		_, err := tx.ExecContext(ctx, `UPDATE devices SET boot_mode = ?, mode_changed = ? WHERE mac = ? AND mode_changed <= ?`,
			BootProvision, o.At, o.MAC, o.At)
		if err != nil || o.Actor == "" {
			return err
		}
		// The plant's audit table has no line column: the line goes into the detail.
		detail := o.Detail
		if s.line != "" {
			detail = "line " + s.line + ": " + detail
		}
		return insertAudit(ctx, tx, o.At, o.Actor, auditReset, o.MAC, detail)
	}
	return fmt.Errorf("unknown change %q", o.Kind)
}

// Backlog is what the line holds for the plant database.
type Backlog struct {
	// Driver is the results database: sqlite, or postgres (with the line's SQLite file as
	// the queue in front of it).
	Driver string `json:"driver"`
	// Pending changes (runs, events, results) not yet in the plant database; Results counts
	// the final results among them.
	Pending int64 `json:"pending"`
	Results int64 `json:"results"`
	// Failed changes the plant database refused (kept in the queue, not retried).
	Failed int64 `json:"failed"`
	// Oldest is when the oldest pending change was made.
	Oldest *time.Time `json:"oldest,omitempty"`
	// Reachable: the last attempt to reach the plant database succeeded.
	Reachable bool   `json:"reachable"`
	LastError string `json:"last_error,omitempty"`
	// LastDelivery is when changes last reached the plant database.
	LastDelivery *time.Time `json:"last_delivery,omitempty"`
}

// Backlog reports the outbox. A store without a plant database has none.
func (s *Store) Backlog(ctx context.Context) (Backlog, error) {
	b := Backlog{Driver: DriverSQLite, Reachable: true}
	if s.pg {
		b.Driver = DriverPostgres
	}
	if !s.queue {
		return b, nil
	}
	b.Driver = DriverPostgres
	var oldest sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(CASE WHEN failed = '' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN failed = '' AND kind = 'result' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN failed != '' THEN 1 ELSE 0 END), 0),
		MIN(CASE WHEN failed = '' THEN at END) FROM outbox`).Scan(&b.Pending, &b.Results, &b.Failed, &oldest)
	if err != nil {
		return Backlog{}, fmt.Errorf("read outbox: %w", err)
	}
	if oldest.Valid {
		t := fromMS(oldest.Int64)
		b.Oldest = &t
	}
	return b, nil
}
