package store

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/flashline/flashline/protocol"
)

// RunDetail is a run with everything recorded about it.
type RunDetail struct {
	Run
	Steps   []Step           `json:"steps"`
	Timings []Timing         `json:"timings"`
	Events  []protocol.Event `json:"events,omitempty"`
}

// Step is a stored step result with its measurements.
type Step struct {
	Index        int                    `json:"index"`
	Name         string                 `json:"name"`
	Check        string                 `json:"check,omitempty"`
	Status       string                 `json:"status"`
	Message      string                 `json:"message,omitempty"`
	Attempts     int                    `json:"attempts"`
	Started      time.Time              `json:"started"`
	DurationMS   int64                  `json:"duration_ms"`
	Measurements []protocol.Measurement `json:"measurements,omitempty"`
}

// Timing is one phase timing. Source is "server" (what the line server saw: the netboot, and
// the reboot after a pass), "hello" (the agent's phases before the job) or "result" (the
// agent's phases after).
type Timing struct {
	Source     string `json:"source"`
	Phase      string `json:"phase"`
	DurationMS int64  `json:"duration_ms"`
}

// HistoryOptions chooses what History loads.
type HistoryOptions struct {
	Events bool // include every event (large)
	Limit  int  // most recent runs only; 0 = all
}

// History returns the runs of the device with this serial, newest first, with their steps,
// measurements and timings.
func (s *Store) History(ctx context.Context, serial string, opt HistoryOptions) ([]RunDetail, error) {
	limit := int64(opt.Limit)
	if limit <= 0 {
		limit = 1 << 62 // PostgreSQL has no LIMIT -1
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+runCols+` FROM runs WHERE serial = ? ORDER BY issued_at DESC, run_id DESC LIMIT ?`, serial, limit)
	if err != nil {
		return nil, fmt.Errorf("history of %q: %w", serial, err)
	}
	var out []RunDetail
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("history of %q: %w", serial, err)
		}
		out = append(out, RunDetail{Run: r})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history of %q: %w", serial, err)
	}
	for i := range out {
		if err := s.fillDetail(ctx, &out[i], opt.Events); err != nil {
			return nil, fmt.Errorf("history of %q: %w", serial, err)
		}
	}
	return out, nil
}

// RunDetail returns one run with its steps, measurements, timings and (optionally) events.
func (s *Store) RunDetail(ctx context.Context, runID string, events bool) (RunDetail, error) {
	r, err := s.Run(ctx, runID)
	if err != nil {
		return RunDetail{}, err
	}
	d := RunDetail{Run: r}
	if err := s.fillDetail(ctx, &d, events); err != nil {
		return RunDetail{}, fmt.Errorf("run %s: %w", runID, err)
	}
	return d, nil
}

func (s *Store) fillDetail(ctx context.Context, d *RunDetail, events bool) error {
	d.Steps = []Step{}
	rows, err := s.r.QueryContext(ctx, `SELECT idx, name, check_kind, status, message, attempts, started, duration_ms
		FROM steps WHERE run_id = ? ORDER BY idx`, d.RunID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var st Step
		var started int64
		if err := rows.Scan(&st.Index, &st.Name, &st.Check, &st.Status, &st.Message, &st.Attempts, &started, &st.DurationMS); err != nil {
			rows.Close()
			return err
		}
		st.Started = fromMS(started)
		d.Steps = append(d.Steps, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = s.r.QueryContext(ctx, `SELECT step_idx, name, value, text, unit FROM measurements WHERE run_id = ?
		ORDER BY step_idx, idx`, d.RunID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var idx int
		var m protocol.Measurement
		var v sql.NullFloat64
		if err := rows.Scan(&idx, &m.Name, &v, &m.Text, &m.Unit); err != nil {
			rows.Close()
			return err
		}
		if v.Valid {
			f := v.Float64
			m.Value = &f
		}
		if idx >= 0 && idx < len(d.Steps) {
			d.Steps[idx].Measurements = append(d.Steps[idx].Measurements, m)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	d.Timings = []Timing{}
	// In the order they happened: the server's view of the netboot, the agent's phases before
	// its hello, the rest of the journey, then the reboot the server saw after the result.
	rows, err = s.r.QueryContext(ctx, `SELECT source, phase, duration_ms FROM timings WHERE run_id = ?
		ORDER BY CASE WHEN source = 'server' AND phase = ? THEN 3 WHEN source = 'server' THEN 0
			WHEN source = 'hello' THEN 1 ELSE 2 END, idx`, d.RunID, PhaseReboot)
	if err != nil {
		return err
	}
	for rows.Next() {
		var t Timing
		if err := rows.Scan(&t.Source, &t.Phase, &t.DurationMS); err != nil {
			rows.Close()
			return err
		}
		d.Timings = append(d.Timings, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if !events {
		return nil
	}
	rows, err = s.r.QueryContext(ctx, `SELECT seq, time, kind, phase, step, status, message, done, total, measurements
		FROM events WHERE run_id = ? ORDER BY seq`, d.RunID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e protocol.Event
		var t int64
		var status, meas string
		if err := rows.Scan(&e.Seq, &t, &e.Kind, &e.Phase, &e.Step, &status, &e.Message, &e.Done, &e.Total, &meas); err != nil {
			return err
		}
		e.Time, e.Status = fromMS(t), protocol.Status(status)
		if meas != "" {
			if err := json.Unmarshal([]byte(meas), &e.Measurements); err != nil {
				return fmt.Errorf("event %d measurements: %w", e.Seq, err)
			}
		}
		d.Events = append(d.Events, e)
	}
	return rows.Err()
}

// Export is the JSON export of one serial's history.
type Export struct {
	Serial     string      `json:"serial"`
	ExportedAt time.Time   `json:"exported_at"`
	Runs       []RunDetail `json:"runs"`
}

// ExportJSON writes every run of serial, with steps, measurements, timings and events, as one
// JSON document.
func (s *Store) ExportJSON(ctx context.Context, w io.Writer, serial string) error {
	runs, err := s.History(ctx, serial, HistoryOptions{Events: true})
	if err != nil {
		return err
	}
	if runs == nil {
		runs = []RunDetail{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(Export{Serial: serial, ExportedAt: s.now().UTC(), Runs: runs}); err != nil {
		return fmt.Errorf("export %q: %w", serial, err)
	}
	return nil
}

// CSVHeader is the header row of ExportCSV. Each row is a run, a step, a measurement, the
// flash or a phase timing, told apart by the record column.
func CSVHeader() []string {
	return []string{"record", "run_id", "serial", "mac", "run_status", "issued_at", "finished_at",
		"step_index", "step", "check", "status", "duration_ms", "name", "value", "text", "unit", "message"}
}

// ExportCSV writes every run of serial as CSV rows (see CSVHeader).
func (s *Store) ExportCSV(ctx context.Context, w io.Writer, serial string) error {
	runs, err := s.History(ctx, serial, HistoryOptions{})
	if err != nil {
		return err
	}
	if err := writeCSV(w, CSVHeader(), runs, nil); err != nil {
		return fmt.Errorf("export %q: %w", serial, err)
	}
	return nil
}

// writeCSV writes runs (newest first) oldest first as CSV rows; extra, when set, adds
// columns to every row of a run.
func writeCSV(w io.Writer, header []string, runs []RunDetail, extra func(r RunDetail) []string) error {
	cw := csv.NewWriter(w)
	cw.Write(header)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	for i := len(runs) - 1; i >= 0; i-- { // oldest first reads naturally in a spreadsheet
		r := runs[i]
		fin := ""
		if r.FinishedAt != nil {
			fin = ts(*r.FinishedAt)
		}
		base := []string{r.RunID, r.Serial, r.MAC, r.Status, ts(r.IssuedAt), fin}
		var more []string
		if extra != nil {
			more = extra(r)
		}
		row := func(rec string, rest ...string) {
			cw.Write(append(append(append([]string{rec}, base...), rest...), more...))
		}
		msg := r.Reason
		row("run", "", r.FailedStep, "", r.Status, "", r.Scenario, "", r.Image, "", msg)
		for _, st := range r.Steps {
			idx := strconv.Itoa(st.Index)
			row("step", idx, st.Name, st.Check, st.Status, strconv.FormatInt(st.DurationMS, 10), "", "", "", "", st.Message)
			for _, m := range st.Measurements {
				v := ""
				if m.Value != nil {
					v = strconv.FormatFloat(*m.Value, 'g', -1, 64)
				}
				row("measurement", idx, st.Name, st.Check, st.Status, "", m.Name, v, m.Text, m.Unit, "")
			}
		}
		if r.Flash != nil {
			row("flash", "", "", "", r.Status, strconv.FormatInt(r.Flash.DurationMS, 10), r.Flash.Target,
				strconv.FormatInt(r.Flash.Bytes, 10), r.Flash.SHA256, "bytes", r.Flash.Format)
		}
		for _, t := range r.Timings {
			row("timing", "", "", "", "", strconv.FormatInt(t.DurationMS, 10), t.Phase, "", t.Source, "ms", "")
		}
	}
	cw.Flush()
	return cw.Error()
}
