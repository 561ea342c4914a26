package store

// migrations are applied in order; PRAGMA user_version records how many ran. Never edit a
// released migration: append a new one.
var migrations = []string{
	// 1: devices, runs, steps, measurements, events, phase timings.
	`
CREATE TABLE devices (
	mac          TEXT PRIMARY KEY,
	serial       TEXT NOT NULL DEFAULT '',
	product      TEXT NOT NULL DEFAULT '',
	boot_mode    TEXT NOT NULL DEFAULT 'provision',
	mode_changed INTEGER NOT NULL DEFAULT 0,
	last_run_id  TEXT NOT NULL DEFAULT '',
	first_seen   INTEGER NOT NULL,
	last_seen    INTEGER NOT NULL,
	inventory    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX devices_serial ON devices(serial);
CREATE INDEX devices_last_seen ON devices(last_seen);

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
	issued_at         INTEGER NOT NULL,
	expires_at        INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL,
	status            TEXT NOT NULL DEFAULT 'issued',
	phase             TEXT NOT NULL DEFAULT '',
	step              TEXT NOT NULL DEFAULT '',
	message           TEXT NOT NULL DEFAULT '',
	progress_done     INTEGER NOT NULL DEFAULT 0,
	progress_total    INTEGER NOT NULL DEFAULT 0,
	acked_seq         INTEGER NOT NULL DEFAULT 0,
	last_seq          INTEGER NOT NULL DEFAULT 0,
	finished_at       INTEGER,
	failed_step       TEXT NOT NULL DEFAULT '',
	reason            TEXT NOT NULL DEFAULT '',
	flash_target      TEXT NOT NULL DEFAULT '',
	flash_bytes       INTEGER NOT NULL DEFAULT 0,
	flash_sha256      TEXT NOT NULL DEFAULT '',
	flash_format      TEXT NOT NULL DEFAULT '',
	flash_duration_ms INTEGER NOT NULL DEFAULT 0,
	flash_resumes     INTEGER NOT NULL DEFAULT 0,
	result            TEXT
);
CREATE INDEX runs_serial ON runs(serial, issued_at);
CREATE INDEX runs_mac ON runs(mac, issued_at);

CREATE TABLE steps (
	run_id      TEXT NOT NULL REFERENCES runs(run_id),
	idx         INTEGER NOT NULL,
	name        TEXT NOT NULL,
	check_kind  TEXT NOT NULL DEFAULT '',
	status      TEXT NOT NULL,
	message     TEXT NOT NULL DEFAULT '',
	attempts    INTEGER NOT NULL DEFAULT 0,
	started     INTEGER NOT NULL DEFAULT 0,
	duration_ms INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;

CREATE TABLE measurements (
	run_id   TEXT NOT NULL,
	step_idx INTEGER NOT NULL,
	idx      INTEGER NOT NULL,
	name     TEXT NOT NULL,
	value    REAL,
	text     TEXT NOT NULL DEFAULT '',
	unit     TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, step_idx, idx),
	FOREIGN KEY (run_id, step_idx) REFERENCES steps(run_id, idx)
) WITHOUT ROWID;

CREATE TABLE events (
	run_id       TEXT NOT NULL REFERENCES runs(run_id),
	seq          INTEGER NOT NULL,
	time         INTEGER NOT NULL,
	kind         TEXT NOT NULL,
	phase        TEXT NOT NULL DEFAULT '',
	step         TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL DEFAULT '',
	message      TEXT NOT NULL DEFAULT '',
	done         INTEGER NOT NULL DEFAULT 0,
	total        INTEGER NOT NULL DEFAULT 0,
	measurements TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- source is "hello" (timings measured before the job) or "result" (the rest of the journey).
CREATE TABLE timings (
	run_id      TEXT NOT NULL REFERENCES runs(run_id),
	source      TEXT NOT NULL,
	idx         INTEGER NOT NULL,
	phase       TEXT NOT NULL,
	duration_ms INTEGER NOT NULL,
	PRIMARY KEY (run_id, source, idx)
) WITHOUT ROWID;
`, // 2: device-write authentication and the operator audit log. secret_hash is the SHA-256
	// of the run's secret (never the secret: a copy of the database must not let anyone
	// report for a device); runs issued before this migration have none and accept no writes.
	`
ALTER TABLE runs ADD COLUMN secret_hash TEXT NOT NULL DEFAULT '';

CREATE TABLE audit (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	time   INTEGER NOT NULL,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	mac    TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_time ON audit(time);
`,
	// 3: every run and device carries its line; the outbox queues changes for the plant's
	// PostgreSQL database (store driver postgres), oldest first.
	`
ALTER TABLE runs ADD COLUMN line TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN line TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_line ON runs(line, issued_at);
CREATE INDEX devices_line ON devices(line, last_seen);
CREATE TABLE outbox (
	seq    INTEGER PRIMARY KEY AUTOINCREMENT,
	kind   TEXT NOT NULL,
	run_id TEXT NOT NULL DEFAULT '',
	at     INTEGER NOT NULL,
	body   TEXT NOT NULL,
	-- why the plant database refused it (not a connection problem): kept, not retried
	failed TEXT NOT NULL DEFAULT ''
);
`,
	// 4: the line view. A run's station (and what placed it: dhcp-relay, lldp, config) and
	// the port the network named; heard_at, the last time the device was heard (events or
	// heartbeats), and whether its agent sends heartbeats (SILENT after the heartbeat
	// timeout, not the job's expiry); the scenario's step count and the step being run; the
	// operator prompt shown while a step waits. Devices no rule matched, with what they
	// reported and why no rule took them.
	`
ALTER TABLE runs ADD COLUMN station TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN station_source TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN station_port TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN heard_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN heartbeat INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN steps_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN step_index INTEGER NOT NULL DEFAULT 0;
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
	first_seen INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	hellos     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX unmatched_last_seen ON unmatched(last_seen);
`,
}
