package store

import (
	"context"
	"io"
	"time"

	"github.com/flashline/flashline/protocol"
)

// Backend is the results store the line server runs on, whatever the database: *Store (one
// line, SQLite) and *Plant (the line's SQLite file in front of the plant's PostgreSQL) both
// implement it.
type Backend interface {
	// Line is the line runs are recorded on ("" when none is configured).
	Line() string

	StartRun(ctx context.Context, n NewRun) error
	// CheckRunSecret authenticates a device's write for a run (auth.go); a Plant checks it
	// against the line's own file, so devices are authenticated while the plant is down.
	CheckRunSecret(ctx context.Context, runID, secret string, now time.Time) error
	AddEvents(ctx context.Context, runID, serial string, evs []protocol.Event) (EventsAck, error)
	PutResult(ctx context.Context, res protocol.Result) (duplicate bool, err error)
	RecordReboot(ctx context.Context, mac string, at time.Time, within time.Duration) (runID string, d time.Duration, err error)
	BootMode(ctx context.Context, mac string) (string, error)
	LocalBoot(ctx context.Context, mac string) (bool, error)
	ResetDevice(ctx context.Context, mac string) error
	// ResetDeviceBy is ResetDevice with an entry in the audit log, and Audit reads the log
	// (the line's own, auth.go).
	ResetDeviceBy(ctx context.Context, mac, actor, detail string) error
	Audit(ctx context.Context, limit int) ([]AuditEntry, error)

	Run(ctx context.Context, runID string) (Run, error)
	RunDetail(ctx context.Context, runID string, events bool) (RunDetail, error)
	Device(ctx context.Context, mac string) (Device, error)
	Devices(ctx context.Context, since time.Time, limit int) ([]Device, error)
	DevicesOn(ctx context.Context, line string, since time.Time, limit int) ([]Device, error)
	History(ctx context.Context, serial string, opt HistoryOptions) ([]RunDetail, error)
	ExportJSON(ctx context.Context, w io.Writer, serial string) error
	ExportCSV(ctx context.Context, w io.Writer, serial string) error
	Figures(ctx context.Context, f FiguresFilter) (Figures, error)
	ExportRuns(ctx context.Context, w io.Writer, f FiguresFilter, format string) error
	Count(ctx context.Context) (Counts, error)
	Backlog(ctx context.Context) (Backlog, error)

	Close() error
}

var (
	_ Backend = (*Store)(nil)
	_ Backend = (*Plant)(nil)
)

// Line is the line runs are recorded on.
func (s *Store) Line() string { return s.line }
