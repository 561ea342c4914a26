package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgMigrations are PostgreSQL's schema, applied in order; the schema_version table records
// how many ran. Never edit a released migration: append a new one. The tables are SQLite's
// (migrations) with PostgreSQL's types, so the same statements run on both.
var pgMigrations = []string{
	// 1: devices, runs (with their line), steps, measurements, events, phase timings.
	`
CREATE TABLE devices (
	mac          TEXT PRIMARY KEY,
	serial       TEXT NOT NULL DEFAULT '',
	product      TEXT NOT NULL DEFAULT '',
	boot_mode    TEXT NOT NULL DEFAULT 'provision',
	mode_changed BIGINT NOT NULL DEFAULT 0,
	last_run_id  TEXT NOT NULL DEFAULT '',
	first_seen   BIGINT NOT NULL,
	last_seen    BIGINT NOT NULL,
	inventory    TEXT NOT NULL DEFAULT '{}',
	line         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX devices_serial ON devices(serial);
CREATE INDEX devices_last_seen ON devices(last_seen);
CREATE INDEX devices_line ON devices(line, last_seen);

CREATE TABLE runs (
	run_id            TEXT PRIMARY KEY,
	serial            TEXT NOT NULL,
	mac               TEXT NOT NULL,
	product           TEXT NOT NULL DEFAULT '',
	rule              TEXT NOT NULL DEFAULT '',
	scenario          TEXT NOT NULL DEFAULT '',
	image             TEXT NOT NULL DEFAULT '',
	agent_version     TEXT NOT NULL DEFAULT '',
	ip                TEXT NOT NULL DEFAULT '',
	issued_at         BIGINT NOT NULL,
	expires_at        BIGINT NOT NULL,
	updated_at        BIGINT NOT NULL,
	status            TEXT NOT NULL DEFAULT 'issued',
	phase             TEXT NOT NULL DEFAULT '',
	step              TEXT NOT NULL DEFAULT '',
	message           TEXT NOT NULL DEFAULT '',
	progress_done     BIGINT NOT NULL DEFAULT 0,
	progress_total    BIGINT NOT NULL DEFAULT 0,
	acked_seq         BIGINT NOT NULL DEFAULT 0,
	last_seq          BIGINT NOT NULL DEFAULT 0,
	finished_at       BIGINT,
	failed_step       TEXT NOT NULL DEFAULT '',
	reason            TEXT NOT NULL DEFAULT '',
	flash_target      TEXT NOT NULL DEFAULT '',
	flash_bytes       BIGINT NOT NULL DEFAULT 0,
	flash_sha256      TEXT NOT NULL DEFAULT '',
	flash_format      TEXT NOT NULL DEFAULT '',
	flash_duration_ms BIGINT NOT NULL DEFAULT 0,
	flash_resumes     BIGINT NOT NULL DEFAULT 0,
	result            TEXT,
	line              TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_serial ON runs(serial, issued_at);
CREATE INDEX runs_mac ON runs(mac, issued_at);
CREATE INDEX runs_line ON runs(line, issued_at);

CREATE TABLE steps (
	run_id      TEXT NOT NULL REFERENCES runs(run_id),
	idx         BIGINT NOT NULL,
	name        TEXT NOT NULL,
	check_kind  TEXT NOT NULL DEFAULT '',
	status      TEXT NOT NULL,
	message     TEXT NOT NULL DEFAULT '',
	attempts    BIGINT NOT NULL DEFAULT 0,
	started     BIGINT NOT NULL DEFAULT 0,
	duration_ms BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (run_id, idx)
);

CREATE TABLE measurements (
	run_id   TEXT NOT NULL,
	step_idx BIGINT NOT NULL,
	idx      BIGINT NOT NULL,
	name     TEXT NOT NULL,
	value    DOUBLE PRECISION,
	text     TEXT NOT NULL DEFAULT '',
	unit     TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, step_idx, idx),
	FOREIGN KEY (run_id, step_idx) REFERENCES steps(run_id, idx)
);

CREATE TABLE events (
	run_id       TEXT NOT NULL REFERENCES runs(run_id),
	seq          BIGINT NOT NULL,
	time         BIGINT NOT NULL,
	kind         TEXT NOT NULL,
	phase        TEXT NOT NULL DEFAULT '',
	step         TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL DEFAULT '',
	message      TEXT NOT NULL DEFAULT '',
	done         BIGINT NOT NULL DEFAULT 0,
	total        BIGINT NOT NULL DEFAULT 0,
	measurements TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, seq)
);

CREATE TABLE timings (
	run_id      TEXT NOT NULL REFERENCES runs(run_id),
	source      TEXT NOT NULL,
	idx         BIGINT NOT NULL,
	phase       TEXT NOT NULL,
	duration_ms BIGINT NOT NULL,
	PRIMARY KEY (run_id, source, idx)
);
`,
	// 2: device-write authentication and the operator audit log (SQLite's migration 2).
	`
ALTER TABLE runs ADD COLUMN secret_hash TEXT NOT NULL DEFAULT '';

CREATE TABLE audit (
	id     BIGSERIAL PRIMARY KEY,
	time   BIGINT NOT NULL,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	mac    TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_time ON audit(time);
`,
	// 3: the line view (SQLite's migration 4).
	`
ALTER TABLE runs ADD COLUMN station TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN station_source TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN station_port TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN heard_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN heartbeat BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN steps_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN step_index BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN prompt_step TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN station TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_station ON runs(station, issued_at);
CREATE INDEX runs_finished ON runs(finished_at);
CREATE TABLE unmatched (
	mac        TEXT PRIMARY KEY,
	serial     TEXT NOT NULL DEFAULT '',
	product    TEXT NOT NULL DEFAULT '',
	line       TEXT NOT NULL DEFAULT '',
	station    TEXT NOT NULL DEFAULT '',
	ip         TEXT NOT NULL DEFAULT '',
	reported   TEXT NOT NULL DEFAULT '{}',
	reason     TEXT NOT NULL DEFAULT '',
	first_seen BIGINT NOT NULL,
	last_seen  BIGINT NOT NULL,
	hellos     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX unmatched_last_seen ON unmatched(last_seen);
`,
}

// openPostgres connects to dsn and applies pending migrations. Every connection runs with
// synchronous_commit=on, whatever the server's default: a commit has reached the database's
// disk (and its synchronous replicas) before a write returns.
func openPostgres(ctx context.Context, dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres dsn: %w", err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["synchronous_commit"] = "on"
	cfg.RuntimeParams["application_name"] = "flashline-server"
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	db := sql.OpenDB(rebindConnector{stdlib.GetConnector(*cfg)})
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// pgSchema creates the schema_version table if needed and applies pending migrations, one
// transaction each. An advisory lock serialises line servers starting at once on one database.
func (s *Store) pgSchema(ctx context.Context) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	const lockKey = 0x666c6173686c696e // "flashlin"
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(?)`, int64(lockKey)); err != nil {
		return fmt.Errorf("lock schema: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(?)`, int64(lockKey))
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	var v int64
	err = conn.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("init schema_version: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("read schema_version: %w", err)
	}
	if err := checkVersion(int(v), len(pgMigrations)); err != nil {
		return err
	}
	for i := int(v); i < len(pgMigrations); i++ {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, pgMigrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, i+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	var sync string
	if err := conn.QueryRowContext(ctx, `SHOW synchronous_commit`).Scan(&sync); err != nil || sync != "on" {
		return fmt.Errorf("synchronous_commit is %q, want on (%v)", sync, err)
	}
	return nil
}

// ErrSchemaTooNew is returned by Open when the database was migrated by a newer server.
var ErrSchemaTooNew = errors.New("database schema is newer than this server knows")

func checkVersion(have, known int) error {
	if have > known {
		return fmt.Errorf("%w: schema_version %d, this server knows up to %d; upgrade flashline-server (or point it at another database)",
			ErrSchemaTooNew, have, known)
	}
	return nil
}

// retryable reports whether a PostgreSQL transaction failed only because it lost a race
// (serialization failure, deadlock) and running it again may succeed.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// rebindConnector lets the store's statements, written with SQLite's ? placeholders, run on
// PostgreSQL, which wants $1, $2, ...: one set of SQL for both backends.
type rebindConnector struct{ c driver.Connector }

func (r rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := r.c.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &rebindConn{c.(*stdlib.Conn)}, nil
}

func (r rebindConnector) Driver() driver.Driver { return r.c.Driver() }

type rebindConn struct{ *stdlib.Conn }

func (c *rebindConn) Prepare(q string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(q)) }

func (c *rebindConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(q))
}

func (c *rebindConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(q), args)
}

func (c *rebindConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(q), args)
}

// rebind numbers the ? placeholders of q ($1, $2, ...), leaving quoted strings, quoted
// identifiers and comments alone.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote inside
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(q) {
				j = len(q) - 1
			}
			b.WriteString(q[i : j+1])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i - 1
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
