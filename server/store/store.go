// Package store keeps the line's results durably in an embedded SQLite database (the pure-Go
// modernc.org/sqlite driver): devices and their boot mode, runs, steps, measurements, events
// and phase timings. The database runs in WAL mode with synchronous=FULL, so a commit has
// reached the disk (fsync) before any method that writes returns: the server acknowledges an
// agent only after that.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flashline/flashline/protocol"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned for an unknown run or device.
var ErrNotFound = errors.New("not found")

// ErrMismatch is returned when a request names a run of another device.
var ErrMismatch = errors.New("run belongs to another device")

// Boot modes of a device: what its next netboot gets.
const (
	BootProvision = "provision" // the provisioning entry (the agent runs)
	BootLocal     = "localboot" // LOCALBOOT 0: it passed, boot its own disk
)

// Run statuses beyond protocol.Status: a job was issued and nothing was heard since.
const StatusIssued = "issued"

// Store is the results database. It is safe for concurrent use.
type Store struct {
	w   *sql.DB // one connection: SQLite has one writer at a time anyway
	r   *sql.DB // read-only connections, which WAL lets run beside the writer
	now func() time.Time
	// pg: the database is PostgreSQL (w and r are one pool), not SQLite.
	pg bool
	// line is stamped on the runs this store starts (NewRun.Line empty).
	line string
	// queue: every change is also appended to the outbox, in its transaction, for the
	// plant database (see Plant).
	queue bool
	// queued is the newest outbox entry this process added.
	queued maxSeq
}

// Open opens (creating if needed) the SQLite database at path and applies pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	return openSQLite(ctx, path, Options{})
}

// Options choose the database OpenOptions opens.
type Options struct {
	// Driver is "sqlite" (the default) or "postgres".
	Driver string
	// Path is the SQLite file; DSN the PostgreSQL connection string (URL or key=value).
	Path, DSN string
	// Line is the line this server runs; it is stamped on every run it starts.
	Line string
}

// Drivers are the values of Options.Driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// OpenOptions opens the database o names and applies pending migrations. A database whose
// schema is newer than this server's is refused (ErrSchemaTooNew).
func OpenOptions(ctx context.Context, o Options) (*Store, error) {
	switch o.Driver {
	case "", DriverSQLite:
		return openSQLite(ctx, o.Path, o)
	case DriverPostgres:
		db, err := openPostgres(ctx, o.DSN)
		if err != nil {
			return nil, err
		}
		s := &Store{w: db, r: db, now: time.Now, pg: true, line: o.Line}
		if err := s.pgSchema(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("store driver %q: want sqlite or postgres", o.Driver)
}

func openSQLite(ctx context.Context, path string, o Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	dsn := func(readOnly bool) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_txlock", "immediate")
		if readOnly {
			q.Add("_pragma", "query_only(1)")
		} else {
			q.Add("_pragma", "journal_mode(WAL)")
			// FULL: in WAL mode every commit fsyncs the WAL, so an acknowledged result
			// survives a crash or power loss, not only a process kill.
			q.Add("_pragma", "synchronous(FULL)")
		}
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn(false))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	s := &Store{w: w, now: time.Now, line: o.Line}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s.r = r
	var mode, sync string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		s.Close()
		return nil, fmt.Errorf("open store %s: journal mode is %q, want wal (%v)", path, mode, err)
	}
	if err := w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync != "2" {
		s.Close()
		return nil, fmt.Errorf("open store %s: synchronous is %q, want 2 (FULL) (%v)", path, sync, err)
	}
	if o.Line != "" {
		// A SQLite file is one line's: runs recorded before lines were named are its own.
		if _, err := w.ExecContext(ctx, `UPDATE runs SET line = ? WHERE line = ''`, o.Line); err != nil {
			s.Close()
			return nil, fmt.Errorf("open store %s: name the line of older runs: %w", path, err)
		}
		if _, err := w.ExecContext(ctx, `UPDATE devices SET line = ? WHERE line = ''`, o.Line); err != nil {
			s.Close()
			return nil, fmt.Errorf("open store %s: name the line of older devices: %w", path, err)
		}
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if err := checkVersion(v, len(migrations)); err != nil {
		return err
	}
	for i := v; i < len(migrations); i++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}

// tx runs fn in a write transaction and commits it (fsync'd) when fn returns nil.
//
// On PostgreSQL the transaction is READ COMMITTED and each one that decides from a row it
// read first locks that row (forUpdate): the decisions (is this result new, which events
// advance the run, may this reboot be recorded) are each about one run or one device, so
// locking that one row serialises exactly the transactions that conflict while other devices
// go on in parallel. A transaction that still loses a race (deadlock, serialization failure)
// is run again; fn must therefore only set its results, never accumulate them.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.tx1(ctx, fn)
		if s.pg && attempt < 10 && retryable(err) {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		return err
	}
}

func (s *Store) tx1(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// forUpdate is appended to a SELECT of the one row a transaction decides from. SQLite needs
// nothing: its write transactions take the database lock at BEGIN (IMMEDIATE). NO KEY UPDATE
// does not block the inserts of rows that reference it (steps, events).
func (s *Store) forUpdate() string {
	if s.pg {
		return " FOR NO KEY UPDATE"
	}
	return ""
}

// NormalizeMAC returns mac in the lower-case colon form (aa:bb:cc:dd:ee:ff), accepting the
// dash form of pxelinux (aa-bb-...) too.
func NormalizeMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(strings.ReplaceAll(mac, "-", ":"))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("MAC address %q: want aa:bb:cc:dd:ee:ff", mac)
	}
	return hw.String(), nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// NewRun is what is recorded when a job is issued.
type NewRun struct {
	RunID        string
	Serial       string
	MAC          string
	Product      string
	Rule         string
	Scenario     string
	Image        string
	AgentVersion string
	IP           string
	IssuedAt     time.Time
	ExpiresAt    time.Time
	Inventory    protocol.Inventory
	Timings      []protocol.PhaseTiming // measured before Hello
	// ServerTimings are the phases of the netboot that led to this hello as the server saw
	// them (DHCP, TFTP, kernel boot and agent start); stored with source "server".
	ServerTimings []protocol.PhaseTiming
	// Line is the line the run is on; empty means the store's own (Options.Line).
	Line string `json:",omitempty"`
	// SecretHash is protocol.HashRunSecret of the run secret issued with the job.
	SecretHash string
	// The line view (lineview.go): where the device sits, whether its agent sends
	// heartbeats, and how many steps its scenario has.
	Station       string `json:",omitempty"`
	StationSource string `json:",omitempty"`
	StationPort   string `json:",omitempty"`
	Heartbeat     bool   `json:",omitempty"`
	StepsTotal    int    `json:",omitempty"`
}

// StartRun records a newly issued job and the device it went to.
func (s *Store) StartRun(ctx context.Context, n NewRun) error {
	mac, err := NormalizeMAC(n.MAC)
	if err != nil {
		return fmt.Errorf("start run: %w", err)
	}
	inv, err := json.Marshal(n.Inventory)
	if err != nil {
		return fmt.Errorf("start run: %w", err)
	}
	if n.Line == "" {
		n.Line = s.line
	}
	n.MAC = mac
	now := s.now()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.startRun(ctx, tx, n, string(inv), ms(now), false); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, op{Kind: opStart, At: ms(now), Run: &n})
	})
	if err != nil {
		return fmt.Errorf("start run %s: %w", n.RunID, err)
	}
	return nil
}

// startRun records n (MAC normalised, inventory as JSON). replay: n comes from the outbox
// and may already be stored, which is then left as it is.
func (s *Store) startRun(ctx context.Context, tx *sql.Tx, n NewRun, inv string, now int64, replay bool) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO runs (run_id, serial, mac, product, rule, scenario, image,
		agent_version, ip, issued_at, expires_at, updated_at, line, secret_hash,
		station, station_source, station_port, heartbeat, steps_total, heard_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (run_id) DO NOTHING`,
		n.RunID, n.Serial, n.MAC, n.Product, n.Rule, n.Scenario, n.Image, n.AgentVersion, n.IP,
		ms(n.IssuedAt), ms(n.ExpiresAt), now, n.Line, n.SecretHash,
		n.Station, n.StationSource, n.StationPort, boolInt(n.Heartbeat), n.StepsTotal, now)
	if err != nil {
		return err
	}
	if k, err := res.RowsAffected(); err != nil {
		return err
	} else if k == 0 {
		if replay {
			return nil
		}
		return fmt.Errorf("run id %q is already taken", n.RunID)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO devices (mac, serial, product, last_run_id, first_seen, last_seen, inventory, line, station)
		VALUES (?,?,?,?,?,?,?,?,?)
		ON CONFLICT(mac) DO UPDATE SET serial=excluded.serial, product=excluded.product,
			last_run_id=excluded.last_run_id, last_seen=excluded.last_seen, inventory=excluded.inventory, line=excluded.line,
			station=excluded.station`,
		n.MAC, n.Serial, n.Product, n.RunID, now, now, inv, n.Line, n.Station); err != nil {
		return err
	}
	if err := insertTimings(ctx, tx, n.RunID, "server", n.ServerTimings); err != nil {
		return err
	}
	return insertTimings(ctx, tx, n.RunID, "hello", n.Timings)
}

func insertTimings(ctx context.Context, tx *sql.Tx, runID, source string, ts []protocol.PhaseTiming) error {
	for i, t := range ts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO timings (run_id, source, idx, phase, duration_ms) VALUES (?,?,?,?,?)
			ON CONFLICT DO NOTHING`,
			runID, source, i, t.Phase, t.DurationMS); err != nil {
			return err
		}
	}
	return nil
}

// Run is a run's record: what was issued and, as events and the result arrive, where it is.
type Run struct {
	RunID         string       `json:"run_id"`
	Line          string       `json:"line,omitempty"`
	Serial        string       `json:"serial"`
	MAC           string       `json:"mac"`
	Product       string       `json:"product,omitempty"`
	Rule          string       `json:"rule,omitempty"`
	Scenario      string       `json:"scenario,omitempty"`
	Image         string       `json:"image,omitempty"`
	AgentVersion  string       `json:"agent_version,omitempty"`
	IP            string       `json:"ip,omitempty"`
	IssuedAt      time.Time    `json:"issued_at"`
	ExpiresAt     time.Time    `json:"expires_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
	Status        string       `json:"status"` // issued, running, pass, fail, error
	Phase         string       `json:"phase,omitempty"`
	Step          string       `json:"step,omitempty"`
	Message       string       `json:"message,omitempty"`
	ProgressDone  int64        `json:"progress_done,omitempty"`
	ProgressTotal int64        `json:"progress_total,omitempty"`
	AckedSeq      int64        `json:"acked_seq"`
	FinishedAt    *time.Time   `json:"finished_at,omitempty"`
	FailedStep    string       `json:"failed_step,omitempty"`
	Reason        string       `json:"reason,omitempty"`
	Flash         *FlashRecord `json:"flash,omitempty"`
	HasResult     bool         `json:"has_result"`
	LineView
}

// FlashRecord is the flash part of a stored result.
type FlashRecord struct {
	Target     string `json:"target"`
	Bytes      int64  `json:"bytes"`
	SHA256     string `json:"sha256,omitempty"`
	Format     string `json:"format,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	Resumes    int    `json:"resumes,omitempty"`
}

const runCols = `run_id, serial, mac, product, rule, scenario, image, agent_version, ip, issued_at, expires_at,
	updated_at, status, phase, step, message, progress_done, progress_total, acked_seq, finished_at, failed_step,
	reason, flash_target, flash_bytes, flash_sha256, flash_format, flash_duration_ms, flash_resumes, result IS NOT NULL, line,
	` + lineViewCols

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (Run, error) {
	var r Run
	var issued, expires, updated int64
	var finished sql.NullInt64
	var f FlashRecord
	var lv lineViewScan
	err := sc.Scan(&r.RunID, &r.Serial, &r.MAC, &r.Product, &r.Rule, &r.Scenario, &r.Image, &r.AgentVersion, &r.IP,
		&issued, &expires, &updated, &r.Status, &r.Phase, &r.Step, &r.Message, &r.ProgressDone, &r.ProgressTotal,
		&r.AckedSeq, &finished, &r.FailedStep, &r.Reason, &f.Target, &f.Bytes, &f.SHA256, &f.Format, &f.DurationMS,
		&f.Resumes, &r.HasResult, &r.Line, &lv.station, &lv.source, &lv.port, &lv.heard, &lv.heartbeat, &lv.total,
		&lv.index, &lv.prompt, &lv.promptStep)
	if err != nil {
		return Run{}, err
	}
	r.LineView = lv.view()
	r.IssuedAt, r.ExpiresAt, r.UpdatedAt = fromMS(issued), fromMS(expires), fromMS(updated)
	if finished.Valid {
		t := fromMS(finished.Int64)
		r.FinishedAt = &t
	}
	if f.Target != "" || f.Bytes != 0 {
		r.Flash = &f
	}
	return r, nil
}

// Run returns one run, or ErrNotFound.
func (s *Store) Run(ctx context.Context, runID string) (Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE run_id = ?`, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("run %q: %w", runID, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("read run %q: %w", runID, err)
	}
	return r, nil
}

// EventsAck is what AddEvents stored.
type EventsAck struct {
	// Seq: every event up to it that the agent may still hold is stored; it may forget them.
	Seq int64
	// Skipped counts sequence numbers below Seq never received: the agent dropped them
	// (its queue overflowed while the server was unreachable). Reported once, when skipped.
	Skipped int64
}

// AddEvents stores a batch of a run's events, each Seq once (repeats are ignored), updates the
// run's live state from the newest of them, and acknowledges. serial, when not empty, must be
// the run's.
//
// The acknowledgement is the end of the stored prefix without gaps, or the batch's highest
// Seq if that is more: an agent sends its pending events oldest first and retries a batch
// until it is acknowledged, so a batch starting above the prefix means the events in between
// are no longer on the device. Acknowledging only the gap-free prefix would leave such an
// agent resending the same batch forever.
func (s *Store) AddEvents(ctx context.Context, runID, serial string, evs []protocol.Event) (EventsAck, error) {
	evs = append([]protocol.Event(nil), evs...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	var ack EventsAck
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var stored []protocol.Event
		var err error
		ack, stored, err = s.addEvents(ctx, tx, runID, serial, evs, ms(now))
		if err != nil || len(stored) == 0 {
			return err
		}
		return s.enqueue(ctx, tx, op{Kind: opEvents, At: ms(now), RunID: runID, Serial: serial, Events: stored})
	})
	if err != nil {
		return EventsAck{}, fmt.Errorf("add events to run %s: %w", runID, err)
	}
	return ack, nil
}

// addEvents stores the events of evs (sorted by Seq) not stored yet, which it returns.
func (s *Store) addEvents(ctx context.Context, tx *sql.Tx, runID, serial string, evs []protocol.Event, now int64) (EventsAck, []protocol.Event, error) {
	var acked, skipped int64
	var stored []protocol.Event
	err := func() error {
		var runSerial, status string
		var lastSeq int64
		err := tx.QueryRowContext(ctx, `SELECT serial, status, acked_seq, last_seq FROM runs WHERE run_id = ?`+s.forUpdate(), runID).
			Scan(&runSerial, &status, &acked, &lastSeq)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run %q: %w", runID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if serial != "" && serial != runSerial {
			return fmt.Errorf("run %q is serial %q, batch says %q: %w", runID, runSerial, serial, ErrMismatch)
		}
		live := liveState{}
		if err := tx.QueryRowContext(ctx, `SELECT phase, step, message, progress_done, progress_total, prompt, prompt_step FROM runs WHERE run_id = ?`, runID).
			Scan(&live.phase, &live.step, &live.message, &live.done, &live.total, &live.prompt, &live.promptStep); err != nil {
			return err
		}
		changed := false
		for _, e := range evs {
			var meas string
			if len(e.Measurements) > 0 {
				b, err := json.Marshal(e.Measurements)
				if err != nil {
					return err
				}
				meas = string(b)
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO events (run_id, seq, time, kind, phase, step, status, message,
				done, total, measurements) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
				runID, e.Seq, ms(e.Time), e.Kind, e.Phase, e.Step, string(e.Status), e.Message, e.Done, e.Total, meas)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			if n == 1 {
				stored = append(stored, e)
			}
			if n == 1 && e.Seq > lastSeq {
				live.apply(e)
				lastSeq = e.Seq
				changed = true
			}
		}
		// Advance the acknowledged prefix over the events now stored without a gap.
		rows, err := tx.QueryContext(ctx, `SELECT seq FROM events WHERE run_id = ? AND seq > ? ORDER BY seq`, runID, acked)
		if err != nil {
			return err
		}
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return err
			}
			if seq != acked+1 {
				break
			}
			acked = seq
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n := len(evs); n > 0 && evs[n-1].Seq > acked {
			var have int64
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE run_id = ? AND seq > ? AND seq <= ?`,
				runID, acked, evs[n-1].Seq).Scan(&have); err != nil {
				return err
			}
			skipped = evs[n-1].Seq - acked - have
			acked = evs[n-1].Seq
		}
		newStatus := status
		if changed && status == StatusIssued {
			newStatus = string(protocol.StatusRunning)
		}
		_, err = tx.ExecContext(ctx, `UPDATE runs SET acked_seq = ?, last_seq = ?, status = ?, phase = ?, step = ?, message = ?,
			progress_done = ?, progress_total = ?, updated_at = ?, prompt = ?, prompt_step = ?, heard_at = ? WHERE run_id = ?`,
			acked, lastSeq, newStatus, live.phase, live.step, live.message, live.done, live.total, now, live.prompt, live.promptStep, now, runID)
		if err != nil {
			return err
		}
		return updateStepIndex(ctx, tx, runID)
	}()
	if err != nil {
		return EventsAck{}, nil, err
	}
	return EventsAck{Seq: acked, Skipped: skipped}, stored, nil
}

// liveState is the "where is it now" of a run, folded from its events.
type liveState struct {
	phase, step, message string
	done, total          int64
	// prompt is what the operator is asked to do (for promptStep), until that step ends.
	prompt, promptStep string
}

func (l *liveState) apply(e protocol.Event) {
	switch e.Kind {
	case protocol.EventPhase:
		if e.Status == protocol.StatusRunning || e.Status == "" {
			l.phase = e.Phase
		}
		if e.Message != "" {
			l.message = e.Message
		}
	case protocol.EventStep:
		l.step = e.Step
		if e.Message != "" || e.Status == protocol.StatusRunning {
			l.message = e.Message
		}
	case protocol.EventProgress:
		if e.Phase != "" {
			l.phase = e.Phase
		}
		l.done, l.total = e.Done, e.Total
	case protocol.EventPrompt, protocol.EventLog:
		l.message = e.Message
	}
	l.applyPrompt(e)
}

// PutResult stores a run's final result once. A repeat of an already stored result is
// acknowledged (duplicate true) without storing anything. A passed run switches the device to
// local boot; any other outcome leaves it (or puts it back) on provisioning.
func (s *Store) PutResult(ctx context.Context, res protocol.Result) (duplicate bool, err error) {
	now := s.now()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if duplicate, err = s.putResult(ctx, tx, res, ms(now)); err != nil || duplicate {
			return err
		}
		return s.enqueue(ctx, tx, op{Kind: opResult, At: ms(now), Result: &res})
	})
	if err != nil {
		return false, fmt.Errorf("store result %s: %w", res.RunID, err)
	}
	return duplicate, nil
}

func (s *Store) putResult(ctx context.Context, tx *sql.Tx, res protocol.Result, now int64) (duplicate bool, err error) {
	raw, err := json.Marshal(res)
	if err != nil {
		return false, err
	}
	err = func() error {
		var serial, mac string
		var stored bool
		err := tx.QueryRowContext(ctx, `SELECT serial, mac, result IS NOT NULL FROM runs WHERE run_id = ?`+s.forUpdate(), res.RunID).
			Scan(&serial, &mac, &stored)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run %q: %w", res.RunID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if res.Serial != serial {
			return fmt.Errorf("run %q is serial %q, result says %q: %w", res.RunID, serial, res.Serial, ErrMismatch)
		}
		if res.MAC != "" {
			if m, err := NormalizeMAC(res.MAC); err != nil || m != mac {
				return fmt.Errorf("run %q is MAC %s, result says %q: %w", res.RunID, mac, res.MAC, ErrMismatch)
			}
		}
		if stored {
			duplicate = true
			return nil
		}
		for i, st := range res.Steps {
			if _, err := tx.ExecContext(ctx, `INSERT INTO steps (run_id, idx, name, check_kind, status, message, attempts, started, duration_ms)
				VALUES (?,?,?,?,?,?,?,?,?)`, res.RunID, i, st.Name, st.Check, string(st.Status), st.Message, st.Attempts,
				ms(st.Started), st.DurationMS); err != nil {
				return err
			}
			for j, m := range st.Measurements {
				var v sql.NullFloat64
				if m.Value != nil {
					v = sql.NullFloat64{Float64: *m.Value, Valid: true}
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO measurements (run_id, step_idx, idx, name, value, text, unit)
					VALUES (?,?,?,?,?,?,?)`, res.RunID, i, j, m.Name, v, m.Text, m.Unit); err != nil {
					return err
				}
			}
		}
		if err := insertTimings(ctx, tx, res.RunID, "result", res.Timings); err != nil {
			return err
		}
		var f protocol.FlashResult
		if res.Flash != nil {
			f = *res.Flash
		}
		finished := ms(res.Finished)
		if finished == 0 {
			finished = now
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, finished_at = ?, failed_step = ?, reason = ?,
			flash_target = ?, flash_bytes = ?, flash_sha256 = ?, flash_format = ?, flash_duration_ms = ?, flash_resumes = ?,
			result = ?, updated_at = ?, step = CASE WHEN ? != '' THEN ? ELSE step END WHERE run_id = ?`,
			string(res.Status), finished, res.FailedStep, res.Reason, f.Target, f.Bytes, f.SHA256, f.Format,
			f.DurationMS, f.Resumes, string(raw), now, res.FailedStep, res.FailedStep, res.RunID); err != nil {
			return err
		}
		mode := BootProvision
		if res.Status == protocol.StatusPass {
			mode = BootLocal
		}
		// Only the device's latest run decides its boot mode: a late result of an older run
		// must not override a newer one.
		_, err = tx.ExecContext(ctx, `UPDATE devices SET boot_mode = ?, mode_changed = ?, last_seen = ?
			WHERE mac = ? AND last_run_id = ?`, mode, now, now, mac, res.RunID)
		return err
	}()
	return duplicate, err
}

// PhaseReboot is the server-side timing, recorded on a passed run, from the result's storage
// to the device's next fetch of its pxelinux configuration (which then says LOCALBOOT).
const PhaseReboot = "reboot"

// RecordReboot is told that the device with this MAC fetched its pxelinux configuration at
// at. When that is the first fetch since its latest run passed (which switched it to local
// boot), and no later than within after it, the time since the switch is recorded on that run
// as the "server" phase PhaseReboot, and returned with the run's id. Otherwise nothing is
// recorded and runID is "".
func (s *Store) RecordReboot(ctx context.Context, mac string, at time.Time, within time.Duration) (runID string, d time.Duration, err error) {
	m, err := NormalizeMAC(mac)
	if err != nil {
		return "", 0, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var changed int64
		runID, d = "", 0
		lock := ""
		if s.pg {
			lock = " FOR NO KEY UPDATE OF d"
		}
		err := tx.QueryRowContext(ctx, `SELECT d.last_run_id, d.mode_changed FROM devices d
			JOIN runs r ON r.run_id = d.last_run_id
			WHERE d.mac = ? AND d.boot_mode = ? AND r.status = ?
			AND NOT EXISTS (SELECT 1 FROM timings t WHERE t.run_id = r.run_id AND t.source = 'server' AND t.phase = ?)`+lock,
			m, BootLocal, string(protocol.StatusPass), PhaseReboot).Scan(&runID, &changed)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		d = at.Sub(fromMS(changed))
		if changed == 0 || d < 0 || d > within {
			runID, d = "", 0
			return nil
		}
		if err := insertReboot(ctx, tx, runID, d.Milliseconds()); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, op{Kind: opReboot, At: ms(at), RunID: runID, DurationMS: d.Milliseconds()})
	})
	if err != nil {
		return "", 0, fmt.Errorf("record reboot of %s: %w", m, err)
	}
	return runID, d, nil
}

// insertReboot records a run's reboot timing, once.
func insertReboot(ctx context.Context, tx *sql.Tx, runID string, durationMS int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO timings (run_id, source, idx, phase, duration_ms)
		SELECT CAST(? AS TEXT), 'server', COALESCE(MAX(idx) + 1, 0), CAST(? AS TEXT), CAST(? AS BIGINT) FROM timings
		WHERE run_id = ? AND source = 'server'
		AND NOT EXISTS (SELECT 1 FROM timings WHERE run_id = ? AND source = 'server' AND phase = ?)`,
		runID, PhaseReboot, durationMS, runID, runID, PhaseReboot)
	return err
}

// BootMode returns what a device's next netboot should get: BootLocal once its latest run
// passed (until an operator resets it), BootProvision otherwise, and "" for a device never
// seen (the caller's policy decides; the line's default is to provision it).
func (s *Store) BootMode(ctx context.Context, mac string) (string, error) {
	m, err := NormalizeMAC(mac)
	if err != nil {
		return "", err
	}
	var mode string
	err = s.r.QueryRowContext(ctx, `SELECT boot_mode FROM devices WHERE mac = ?`, m).Scan(&mode)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("boot mode of %s: %w", m, err)
	}
	return mode, nil
}

// LocalBoot reports whether the device with this MAC should boot its own disk (LOCALBOOT)
// rather than the provisioning entry. It is what the pxelinux.cfg generator asks.
func (s *Store) LocalBoot(ctx context.Context, mac string) (bool, error) {
	mode, err := s.BootMode(ctx, mac)
	return mode == BootLocal, err
}

// ResetDevice puts a device back on provisioning: its next netboot runs the agent again.
func (s *Store) ResetDevice(ctx context.Context, mac string) error {
	m, err := NormalizeMAC(mac)
	if err != nil {
		return err
	}
	now := ms(s.now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := resetDevice(ctx, tx, m, now); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, op{Kind: opReset, At: now, MAC: m})
	})
	if err != nil {
		return fmt.Errorf("reset %s: %w", m, err)
	}
	return nil
}

func resetDevice(ctx context.Context, tx *sql.Tx, mac string, now int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE devices SET boot_mode = ?, mode_changed = ? WHERE mac = ?`, BootProvision, now, mac)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("device %w", ErrNotFound)
	}
	return nil
}

// Device is a device as the dashboard lists it, with its latest run.
type Device struct {
	MAC         string    `json:"mac"`
	Line        string    `json:"line,omitempty"`
	Station     string    `json:"station,omitempty"`
	Serial      string    `json:"serial"`
	Product     string    `json:"product,omitempty"`
	BootMode    string    `json:"boot_mode"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	ModeChanged time.Time `json:"mode_changed,omitempty"`
	Run         *Run      `json:"run,omitempty"`
}

// Devices lists the devices seen since since (all when zero), most recent first, at most limit.
func (s *Store) Devices(ctx context.Context, since time.Time, limit int) ([]Device, error) {
	return s.DevicesOn(ctx, AllLines, since, limit)
}

// AllLines, as a line filter, is every line of the plant.
const AllLines = ""

// DevicesOn is Devices of one line (where the device was seen last), or of every line
// (AllLines).
func (s *Store) DevicesOn(ctx context.Context, line string, since time.Time, limit int) ([]Device, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT d.mac, d.serial, d.product, d.boot_mode, d.first_seen, d.last_seen,
		d.mode_changed, d.last_run_id, d.line, d.station FROM devices d WHERE d.last_seen >= ? AND (? = '' OR d.line = ?)
		ORDER BY d.last_seen DESC LIMIT ?`, ms(since), line, line, limit)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	var out []Device
	var runIDs []string
	for rows.Next() {
		var d Device
		var first, last, changed int64
		var runID string
		if err := rows.Scan(&d.MAC, &d.Serial, &d.Product, &d.BootMode, &first, &last, &changed, &runID, &d.Line, &d.Station); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list devices: %w", err)
		}
		d.FirstSeen, d.LastSeen, d.ModeChanged = fromMS(first), fromMS(last), fromMS(changed)
		out = append(out, d)
		runIDs = append(runIDs, runID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	for i, id := range runIDs {
		if id == "" {
			continue
		}
		r, err := s.Run(ctx, id)
		if err != nil {
			return nil, err
		}
		out[i].Run = &r
	}
	return out, nil
}

// Device returns one device with its latest run.
func (s *Store) Device(ctx context.Context, mac string) (Device, error) {
	m, err := NormalizeMAC(mac)
	if err != nil {
		return Device{}, err
	}
	var d Device
	var first, last, changed int64
	var runID string
	err = s.r.QueryRowContext(ctx, `SELECT mac, serial, product, boot_mode, first_seen, last_seen, mode_changed, last_run_id, line, station
		FROM devices WHERE mac = ?`, m).Scan(&d.MAC, &d.Serial, &d.Product, &d.BootMode, &first, &last, &changed, &runID, &d.Line, &d.Station)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("device %s: %w", m, ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("device %s: %w", m, err)
	}
	d.FirstSeen, d.LastSeen, d.ModeChanged = fromMS(first), fromMS(last), fromMS(changed)
	if runID != "" {
		r, err := s.Run(ctx, runID)
		if err != nil {
			return Device{}, err
		}
		d.Run = &r
	}
	return d, nil
}

// Counts is a summary of the database, for metrics and tests.
type Counts struct {
	Devices, Runs, Results, Steps, Measurements, Events, Timings int64
}

// Count counts the rows of each table.
func (s *Store) Count(ctx context.Context) (Counts, error) {
	var c Counts
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM devices), (SELECT COUNT(*) FROM runs),
		(SELECT COUNT(*) FROM runs WHERE result IS NOT NULL), (SELECT COUNT(*) FROM steps),
		(SELECT COUNT(*) FROM measurements), (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM timings)`).
		Scan(&c.Devices, &c.Runs, &c.Results, &c.Steps, &c.Measurements, &c.Events, &c.Timings)
	if err != nil {
		return Counts{}, fmt.Errorf("count rows: %w", err)
	}
	return c, nil
}
