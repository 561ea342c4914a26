package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/flashline/flashline/protocol"
)

// ErrUnauthorized is returned by CheckRunSecret when a write for a run does not carry that
// run's secret.
var ErrUnauthorized = errors.New("not this run's secret")

// ErrExpired is returned by CheckRunSecret for a result or events after the run's job expired.
var ErrExpired = errors.New("the run's job has expired")

// CheckRunSecret verifies that secret is the one issued with runID's job, and that the job has
// not expired at now (give a grace in now if wanted). It returns ErrNotFound for an unknown run,
// ErrUnauthorized for a missing or wrong secret (also for runs stored before secrets existed),
// ErrExpired after the expiry. The comparison is of SHA-256 digests in constant time.
func (s *Store) CheckRunSecret(ctx context.Context, runID, secret string, now time.Time) error {
	var hash string
	var expires int64
	err := s.r.QueryRowContext(ctx, `SELECT secret_hash, expires_at FROM runs WHERE run_id = ?`, runID).Scan(&hash, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("run %q: %w", runID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("run %q: %w", runID, err)
	}
	if hash == "" || secret == "" || subtle.ConstantTimeCompare([]byte(hash), []byte(protocol.HashRunSecret(secret))) != 1 {
		return fmt.Errorf("run %q: %w", runID, ErrUnauthorized)
	}
	if expires != 0 && now.After(fromMS(expires)) {
		return fmt.Errorf("run %q expired at %s: %w", runID, fromMS(expires).Format(time.RFC3339), ErrExpired)
	}
	return nil
}

// AuditEntry is one operator action.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`  // "user:NAME", "token:NAME", "cli:USER@HOST"
	Action string    `json:"action"` // "reset", ...
	MAC    string    `json:"mac,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// ResetDeviceBy resets a device (as ResetDevice) and records who did it in the audit log, in
// the same transaction: a reset without its audit entry never happens. With a plant database
// the reset and its entry go there too, through the outbox.
func (s *Store) ResetDeviceBy(ctx context.Context, mac, actor, detail string) error {
	m, err := NormalizeMAC(mac)
	if err != nil {
		return err
	}
	if actor == "" {
		return errors.New("reset: no actor for the audit log")
	}
	now := ms(s.now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := resetDevice(ctx, tx, m, now); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, now, actor, auditReset, m, detail); err != nil {
			return err
		}
		return s.enqueue(ctx, tx, op{Kind: opReset, At: now, MAC: m, Actor: actor, Detail: detail})
	})
	if err != nil {
		return fmt.Errorf("reset %s: %w", m, err)
	}
	return nil
}

// auditReset is the audit log's action for a reset.
const auditReset = "reset"

// insertAudit adds an entry unless the same one is there already: the outbox may deliver a
// change twice (a crash between the plant's commit and the entry's removal).
func insertAudit(ctx context.Context, tx *sql.Tx, at int64, actor, action, mac, detail string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (time, actor, action, mac, detail)
		SELECT CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT) WHERE NOT EXISTS (SELECT 1 FROM audit WHERE time = ? AND actor = ? AND action = ? AND mac = ?)`,
		at, actor, action, mac, detail, at, actor, action, mac)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// Audit returns the latest operator actions, newest first, at most limit (1 to 10000).
func (s *Store) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	limit = min(max(limit, 1), 10000)
	rows, err := s.r.QueryContext(ctx, `SELECT time, actor, action, mac, detail FROM audit ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var t int64
		if err := rows.Scan(&t, &e.Actor, &e.Action, &e.MAC, &e.Detail); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		e.Time = fromMS(t)
		out = append(out, e)
	}
	return out, rows.Err()
}
