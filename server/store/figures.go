package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"
)

// FiguresFilter chooses the runs of Figures and ExportRuns: one line's or every line's
// (AllLines), finished (Figures) or issued (ExportRuns) in [Since, Until).
type FiguresFilter struct {
	Line         string
	Since, Until time.Time
	// ExportRuns only (lineview.go): Text is a serial or MAC substring in any case, Status
	// a run status ("silent": issued or running), Product a substring, Station exact.
	Text, Status, Product, Station string
}

// maxExportRuns bounds one ExportRuns: a plant's month is for the database's own tools.
const maxExportRuns = 100000

// LineFigures are a line's (or the plant's) output over a time window.
type LineFigures struct {
	Line     string    `json:"line"`
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Finished int64     `json:"finished"` // runs with a final result
	Passed   int64     `json:"passed"`
	Failed   int64     `json:"failed"`
	Errors   int64     `json:"errors"`
	// Yield is Passed / Finished (0 without runs).
	Yield float64 `json:"yield"`
	// Devices is the number of distinct serials that passed; DevicesPerHour that over the
	// window's hours.
	Devices        int64   `json:"devices"`
	DevicesPerHour float64 `json:"devices_per_hour"`
}

// Figures are each line's figures and the total over them.
type Figures struct {
	Lines []LineFigures `json:"lines"`
	Total LineFigures   `json:"total"`
}

func (f *LineFigures) derive() {
	if f.Finished > 0 {
		f.Yield = float64(f.Passed) / float64(f.Finished)
	}
	if h := f.Until.Sub(f.Since).Hours(); h > 0 {
		f.DevicesPerHour = float64(f.Devices) / h
	}
}

// Figures computes yield and devices per hour per line over the runs finished in the
// window. A zero Until is now; a zero Since is 24 hours before Until.
func (s *Store) Figures(ctx context.Context, f FiguresFilter) (Figures, error) {
	f = f.window(s.now())
	rows, err := s.r.QueryContext(ctx, `SELECT line, COUNT(*),
		COALESCE(SUM(CASE WHEN status = 'pass' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN status = 'fail' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0),
		COUNT(DISTINCT CASE WHEN status = 'pass' THEN serial END)
		FROM runs WHERE result IS NOT NULL AND finished_at >= ? AND finished_at < ? AND (? = '' OR line = ?)
		GROUP BY line ORDER BY line`, ms(f.Since), ms(f.Until), f.Line, f.Line)
	if err != nil {
		return Figures{}, fmt.Errorf("line figures: %w", err)
	}
	defer rows.Close()
	out := Figures{Lines: []LineFigures{}, Total: LineFigures{Line: f.Line, Since: f.Since, Until: f.Until}}
	for rows.Next() {
		l := LineFigures{Since: f.Since, Until: f.Until}
		if err := rows.Scan(&l.Line, &l.Finished, &l.Passed, &l.Failed, &l.Errors, &l.Devices); err != nil {
			return Figures{}, fmt.Errorf("line figures: %w", err)
		}
		l.derive()
		out.Lines = append(out.Lines, l)
	}
	if err := rows.Err(); err != nil {
		return Figures{}, fmt.Errorf("line figures: %w", err)
	}
	// A device that passed on two lines counts once for the plant.
	err = s.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'pass' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN status = 'fail' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0),
		COUNT(DISTINCT CASE WHEN status = 'pass' THEN serial END)
		FROM runs WHERE result IS NOT NULL AND finished_at >= ? AND finished_at < ? AND (? = '' OR line = ?)`,
		ms(f.Since), ms(f.Until), f.Line, f.Line).Scan(&out.Total.Finished, &out.Total.Passed, &out.Total.Failed, &out.Total.Errors, &out.Total.Devices)
	if err != nil {
		return Figures{}, fmt.Errorf("plant figures: %w", err)
	}
	out.Total.derive()
	return out, nil
}

func (f FiguresFilter) window(now time.Time) FiguresFilter {
	if f.Until.IsZero() {
		f.Until = now
	}
	if f.Since.IsZero() {
		f.Since = f.Until.Add(-24 * time.Hour)
	}
	f.Since, f.Until = f.Since.UTC(), f.Until.UTC()
	return f
}

// LineExport is the JSON export of the runs of a line or the plant.
type LineExport struct {
	Line       string      `json:"line"` // "" for every line
	Since      time.Time   `json:"since"`
	Until      time.Time   `json:"until"`
	ExportedAt time.Time   `json:"exported_at"`
	Runs       []RunDetail `json:"runs"`
}

// ExportRuns writes the runs issued in the window on one line or every line, with their
// steps, measurements and timings, as "json" or "csv" (CSVHeader plus a line column). At
// most maxExportRuns runs; more is an error asking for a shorter window.
func (s *Store) ExportRuns(ctx context.Context, w io.Writer, f FiguresFilter, format string) error {
	f = f.window(s.now())
	if format != "json" && format != "csv" {
		return fmt.Errorf("export format %q: want json or csv", format)
	}
	cond, args := f.runConds()
	rows, err := s.r.QueryContext(ctx, `SELECT `+runCols+` FROM runs WHERE issued_at >= ? AND issued_at < ? AND (? = '' OR line = ?)`+cond+`
		ORDER BY issued_at DESC, run_id DESC LIMIT ?`, append(append([]any{ms(f.Since), ms(f.Until), f.Line, f.Line}, args...), maxExportRuns+1)...)
	if err != nil {
		return fmt.Errorf("export runs: %w", err)
	}
	var runs []RunDetail
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("export runs: %w", err)
		}
		runs = append(runs, RunDetail{Run: r})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export runs: %w", err)
	}
	if len(runs) > maxExportRuns {
		return fmt.Errorf("export runs: more than %d runs from %s to %s: choose a shorter window", maxExportRuns, f.Since, f.Until)
	}
	for i := range runs {
		if err := s.fillDetail(ctx, &runs[i], false); err != nil {
			return fmt.Errorf("export runs: %w", err)
		}
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].IssuedAt.After(runs[j].IssuedAt) })
	if format == "csv" {
		return writeCSV(w, append(CSVHeader(), ExportExtraColumns...), runs, exportExtra)
	}
	if runs == nil {
		runs = []RunDetail{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(LineExport{Line: f.Line, Since: f.Since, Until: f.Until, ExportedAt: s.now().UTC(), Runs: runs})
}
