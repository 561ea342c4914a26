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

	"github.com/flashline/flashline/agent/protocol"
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
}

// Open opens (creating if needed) the database at path and applies pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
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
	s := &Store{w: w, now: time.Now}
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
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
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
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this server (%d)", v, len(migrations))
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
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
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
	// SecretHash is protocol.HashRunSecret of the run secret issued with the job.
	SecretHash string
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
	now := ms(s.now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO runs (run_id, serial, mac, product, rule, scenario, image,
			agent_version, ip, issued_at, expires_at, updated_at, secret_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			n.RunID, n.Serial, mac, n.Product, n.Rule, n.Scenario, n.Image, n.AgentVersion, n.IP,
			ms(n.IssuedAt), ms(n.ExpiresAt), now, n.SecretHash); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices (mac, serial, product, last_run_id, first_seen, last_seen, inventory)
			VALUES (?,?,?,?,?,?,?)
			ON CONFLICT(mac) DO UPDATE SET serial=excluded.serial, product=excluded.product,
				last_run_id=excluded.last_run_id, last_seen=excluded.last_seen, inventory=excluded.inventory`,
			mac, n.Serial, n.Product, n.RunID, now, now, string(inv)); err != nil {
			return err
		}
		if err := insertTimings(ctx, tx, n.RunID, "server", n.ServerTimings); err != nil {
			return err
		}
		return insertTimings(ctx, tx, n.RunID, "hello", n.Timings)
	})
	if err != nil {
		return fmt.Errorf("start run %s: %w", n.RunID, err)
	}
	return nil
}

func insertTimings(ctx context.Context, tx *sql.Tx, runID, source string, ts []protocol.PhaseTiming) error {
	for i, t := range ts {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO timings (run_id, source, idx, phase, duration_ms) VALUES (?,?,?,?,?)`,
			runID, source, i, t.Phase, t.DurationMS); err != nil {
			return err
		}
	}
	return nil
}

// Run is a run's record: what was issued and, as events and the result arrive, where it is.
type Run struct {
	RunID         string       `json:"run_id"`
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
	reason, flash_target, flash_bytes, flash_sha256, flash_format, flash_duration_ms, flash_resumes, result IS NOT NULL`

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (Run, error) {
	var r Run
	var issued, expires, updated int64
	var finished sql.NullInt64
	var f FlashRecord
	err := sc.Scan(&r.RunID, &r.Serial, &r.MAC, &r.Product, &r.Rule, &r.Scenario, &r.Image, &r.AgentVersion, &r.IP,
		&issued, &expires, &updated, &r.Status, &r.Phase, &r.Step, &r.Message, &r.ProgressDone, &r.ProgressTotal,
		&r.AckedSeq, &finished, &r.FailedStep, &r.Reason, &f.Target, &f.Bytes, &f.SHA256, &f.Format, &f.DurationMS,
		&f.Resumes, &r.HasResult)
	if err != nil {
		return Run{}, err
	}
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
	var acked, skipped int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var runSerial, status string
		var lastSeq int64
		err := tx.QueryRowContext(ctx, `SELECT serial, status, acked_seq, last_seq FROM runs WHERE run_id = ?`, runID).
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
		if err := tx.QueryRowContext(ctx, `SELECT phase, step, message, progress_done, progress_total FROM runs WHERE run_id = ?`, runID).
			Scan(&live.phase, &live.step, &live.message, &live.done, &live.total); err != nil {
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
			res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO events (run_id, seq, time, kind, phase, step, status, message,
				done, total, measurements) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
				runID, e.Seq, ms(e.Time), e.Kind, e.Phase, e.Step, string(e.Status), e.Message, e.Done, e.Total, meas)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 && e.Seq > lastSeq {
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
			progress_done = ?, progress_total = ?, updated_at = ? WHERE run_id = ?`,
			acked, lastSeq, newStatus, live.phase, live.step, live.message, live.done, live.total, ms(s.now()), runID)
		return err
	})
	if err != nil {
		return EventsAck{}, fmt.Errorf("add events to run %s: %w", runID, err)
	}
	return EventsAck{Seq: acked, Skipped: skipped}, nil
}

// liveState is the "where is it now" of a run, folded from its events.
type liveState struct {
	phase, step, message string
	done, total          int64
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
}

// PutResult stores a run's final result once. A repeat of an already stored result is
// acknowledged (duplicate true) without storing anything. A passed run switches the device to
// local boot; any other outcome leaves it (or puts it back) on provisioning.
func (s *Store) PutResult(ctx context.Context, res protocol.Result) (duplicate bool, err error) {
	raw, err := json.Marshal(res)
	if err != nil {
		return false, fmt.Errorf("store result %s: %w", res.RunID, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var serial, mac string
		var stored bool
		err := tx.QueryRowContext(ctx, `SELECT serial, mac, result IS NOT NULL FROM runs WHERE run_id = ?`, res.RunID).
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
		finished := res.Finished
		if finished.IsZero() {
			finished = s.now()
		}
		now := ms(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, finished_at = ?, failed_step = ?, reason = ?,
			flash_target = ?, flash_bytes = ?, flash_sha256 = ?, flash_format = ?, flash_duration_ms = ?, flash_resumes = ?,
			result = ?, updated_at = ?, step = CASE WHEN ? != '' THEN ? ELSE step END WHERE run_id = ?`,
			string(res.Status), ms(finished), res.FailedStep, res.Reason, f.Target, f.Bytes, f.SHA256, f.Format,
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
	})
	if err != nil {
		return false, fmt.Errorf("store result %s: %w", res.RunID, err)
	}
	return duplicate, nil
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
		err := tx.QueryRowContext(ctx, `SELECT d.last_run_id, d.mode_changed FROM devices d
			JOIN runs r ON r.run_id = d.last_run_id
			WHERE d.mac = ? AND d.boot_mode = ? AND r.status = ?
			AND NOT EXISTS (SELECT 1 FROM timings t WHERE t.run_id = r.run_id AND t.source = 'server' AND t.phase = ?)`,
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
		_, err = tx.ExecContext(ctx, `INSERT INTO timings (run_id, source, idx, phase, duration_ms)
			SELECT ?, 'server', COALESCE(MAX(idx) + 1, 0), ?, ? FROM timings WHERE run_id = ? AND source = 'server'`,
			runID, PhaseReboot, d.Milliseconds(), runID)
		return err
	})
	if err != nil {
		return "", 0, fmt.Errorf("record reboot of %s: %w", m, err)
	}
	return runID, d, nil
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
	res, err := s.w.ExecContext(ctx, `UPDATE devices SET boot_mode = ?, mode_changed = ? WHERE mac = ?`, BootProvision, ms(s.now()), m)
	if err != nil {
		return fmt.Errorf("reset %s: %w", m, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("reset %s: device %w", m, ErrNotFound)
	}
	return nil
}

// Device is a device as the dashboard lists it, with its latest run.
type Device struct {
	MAC         string    `json:"mac"`
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
	rows, err := s.r.QueryContext(ctx, `SELECT d.mac, d.serial, d.product, d.boot_mode, d.first_seen, d.last_seen,
		d.mode_changed, d.last_run_id FROM devices d WHERE d.last_seen >= ? ORDER BY d.last_seen DESC LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	var out []Device
	var runIDs []string
	for rows.Next() {
		var d Device
		var first, last, changed int64
		var runID string
		if err := rows.Scan(&d.MAC, &d.Serial, &d.Product, &d.BootMode, &first, &last, &changed, &runID); err != nil {
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
	err = s.r.QueryRowContext(ctx, `SELECT mac, serial, product, boot_mode, first_seen, last_seen, mode_changed, last_run_id
		FROM devices WHERE mac = ?`, m).Scan(&d.MAC, &d.Serial, &d.Product, &d.BootMode, &first, &last, &changed, &runID)
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
