package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/flashline/flashline/protocol"
)

// LineView is what the line overview shows of a run beyond its status: where the device
// sits, when it was last heard, the step it is on out of how many, and what the operator is
// asked to do.
type LineView struct {
	Station       string `json:"station,omitempty"`
	StationSource string `json:"station_source,omitempty"`
	StationPort   string `json:"station_port,omitempty"`
	// HeardAt is the last time the device was heard (hello, events, heartbeats).
	HeardAt time.Time `json:"heard_at"`
	// Heartbeat: the agent sends heartbeats, so silence means it is gone (SilentAt).
	Heartbeat bool `json:"heartbeat,omitempty"`
	// StepsTotal is the number of steps of the run's scenario (0: not known); StepIndex the
	// number of steps started so far, so the step being run is "StepIndex of StepsTotal".
	StepsTotal int `json:"steps_total,omitempty"`
	StepIndex  int `json:"step_index,omitempty"`
	// Prompt is the operator prompt of PromptStep while that step runs.
	Prompt     string `json:"prompt,omitempty"`
	PromptStep string `json:"prompt_step,omitempty"`
	// SilentAt is when a run without a result counts as SILENT; set by the reader that knows
	// the heartbeat timeout (the dashboard), not stored.
	SilentAt *time.Time `json:"silent_at,omitempty"`
}

const lineViewCols = `station, station_source, station_port, heard_at, heartbeat, steps_total, step_index, prompt, prompt_step`

type lineViewScan struct {
	station, source, port, prompt, promptStep string
	heard, heartbeat, total, index            int64
}

func (l lineViewScan) view() LineView {
	return LineView{Station: l.station, StationSource: l.source, StationPort: l.port, HeardAt: fromMS(l.heard),
		Heartbeat: l.heartbeat != 0, StepsTotal: int(l.total), StepIndex: int(l.index), Prompt: l.prompt, PromptStep: l.promptStep}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// SilentAfter is when r, still without a result, counts as SILENT: timeout after it was
// last heard when its agent sends heartbeats, else when its job expires (old agents are
// quiet during long steps). Zero for a finished run.
func (r Run) SilentAfter(timeout time.Duration) time.Time {
	if r.HasResult || r.Status == string(protocol.StatusPass) || r.Status == string(protocol.StatusFail) || r.Status == string(protocol.StatusError) {
		return time.Time{}
	}
	if r.Heartbeat && timeout > 0 {
		heard := r.HeardAt
		if r.UpdatedAt.After(heard) {
			heard = r.UpdatedAt
		}
		if t := heard.Add(timeout); t.Before(r.ExpiresAt) {
			return t
		}
	}
	return r.ExpiresAt
}

// applyPrompt keeps the operator prompt while its step runs: a prompt event sets it, the end
// of that step (or the flash) clears it.
func (l *liveState) applyPrompt(e protocol.Event) {
	switch {
	case e.Kind == protocol.EventPrompt:
		l.prompt, l.promptStep = e.Message, e.Step
	case e.Kind == protocol.EventStep && e.Status != protocol.StatusRunning && e.Status != "" && (e.Step == l.promptStep || l.promptStep == ""):
		l.prompt, l.promptStep = "", ""
	case e.Kind == protocol.EventPhase && e.Phase != "scenario":
		l.prompt, l.promptStep = "", ""
	}
}

// updateStepIndex sets a run's step index to the number of distinct steps started: retries
// of a step do not count twice, and steps running in parallel each count once.
func updateStepIndex(ctx context.Context, tx *sql.Tx, runID string) error {
	_, err := tx.ExecContext(ctx, `UPDATE runs SET step_index = (SELECT COUNT(DISTINCT step) FROM events
		WHERE run_id = ? AND kind = 'step' AND status = 'running' AND step != '') WHERE run_id = ?`, runID, runID)
	return err
}

// Heartbeat records that a run's device was heard at at. It is kept in the line's own file
// only: it changes nothing but the SILENT deadline, which the line's dashboard decides.
func (s *Store) Heartbeat(ctx context.Context, runID string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE runs SET heard_at = ? WHERE run_id = ? AND heard_at < ?`, ms(at), runID, ms(at))
	if err != nil {
		return fmt.Errorf("heartbeat of run %s: %w", runID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var one int
		if err := s.r.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE run_id = ?`, runID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run %q: %w", runID, ErrNotFound)
		}
	}
	return nil
}

// Unmatched is a device that said hello but no rule took: what it reported and why.
type Unmatched struct {
	MAC       string    `json:"mac"`
	Serial    string    `json:"serial"`
	Product   string    `json:"product,omitempty"`
	Line      string    `json:"line,omitempty"`
	Station   string    `json:"station,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Reported  Reported  `json:"reported"`
	Reason    string    `json:"reason"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Hellos    int64     `json:"hellos"`
}

// Reported is the part of an unmatched device's hello a rule could match on.
type Reported struct {
	AgentVersion string   `json:"agent_version,omitempty"`
	Product      string   `json:"product,omitempty"`
	Serial       string   `json:"serial,omitempty"`
	Vendor       string   `json:"vendor,omitempty"`
	Modules      []string `json:"modules,omitempty"`
	Disks        []string `json:"disks,omitempty"`
	NICs         []string `json:"nics,omitempty"`
}

// ReportedOf summarises a hello for an unmatched device.
func ReportedOf(h protocol.Hello) Reported {
	r := Reported{AgentVersion: h.AgentVersion, Product: h.Inventory.DMI.Product, Serial: h.Inventory.DMI.Serial,
		Vendor: h.Inventory.DMI.Vendor, Modules: h.Inventory.Modules}
	for _, d := range h.Inventory.Disks {
		r.Disks = append(r.Disks, strings.TrimSpace(d.Path+" "+d.Transport))
	}
	for _, n := range h.Inventory.NICs {
		r.NICs = append(r.NICs, strings.TrimSpace(n.Name+" "+n.MAC))
	}
	return r
}

// maxUnmatched bounds the unmatched devices kept: a hostile network inventing MACs must not
// fill the disk. The least recently seen go first.
const maxUnmatched = 1000

// RecordUnmatched notes a hello no rule matched; the device's row is updated on every hello.
// A device is no longer listed once it gets a job (StartRun is not told: ListUnmatched
// leaves out MACs whose latest run is newer).
func (s *Store) RecordUnmatched(ctx context.Context, u Unmatched) error {
	mac, err := NormalizeMAC(u.MAC)
	if err != nil {
		return err
	}
	rep, err := json.Marshal(u.Reported)
	if err != nil {
		return err
	}
	if u.Line == "" {
		u.Line = s.line
	}
	now := ms(s.now())
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO unmatched (mac, serial, product, line, station, ip, reported, reason, first_seen, last_seen, hellos)
			VALUES (?,?,?,?,?,?,?,?,?,?,1) ON CONFLICT (mac) DO UPDATE SET serial=excluded.serial, product=excluded.product,
			line=excluded.line, station=excluded.station, ip=excluded.ip, reported=excluded.reported, reason=excluded.reason,
			last_seen=excluded.last_seen, hellos=unmatched.hellos+1`,
			mac, u.Serial, u.Product, u.Line, u.Station, u.IP, string(rep), u.Reason, now, now); err != nil {
			return fmt.Errorf("record unmatched %s: %w", mac, err)
		}
		// PostgreSQL has no LIMIT -1 and SQLite no OFFSET without LIMIT.
		_, err := tx.ExecContext(ctx, `DELETE FROM unmatched WHERE mac IN (SELECT mac FROM unmatched ORDER BY last_seen DESC LIMIT ? OFFSET ?)`,
			int64(1)<<62, maxUnmatched)
		return err
	})
}

// ListUnmatched lists the devices no rule matched seen since since, most recent first,
// leaving out those that got a job since.
func (s *Store) ListUnmatched(ctx context.Context, since time.Time, limit int) ([]Unmatched, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT u.mac, u.serial, u.product, u.line, u.station, u.ip, u.reported, u.reason,
		u.first_seen, u.last_seen, u.hellos FROM unmatched u LEFT JOIN devices d ON d.mac = u.mac
		WHERE u.last_seen >= ? AND (d.mac IS NULL OR d.last_seen < u.last_seen) ORDER BY u.last_seen DESC LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, fmt.Errorf("list unmatched devices: %w", err)
	}
	defer rows.Close()
	out := []Unmatched{}
	for rows.Next() {
		var u Unmatched
		var rep string
		var first, last int64
		if err := rows.Scan(&u.MAC, &u.Serial, &u.Product, &u.Line, &u.Station, &u.IP, &rep, &u.Reason, &first, &last, &u.Hellos); err != nil {
			return nil, fmt.Errorf("list unmatched devices: %w", err)
		}
		_ = json.Unmarshal([]byte(rep), &u.Reported)
		u.FirstSeen, u.LastSeen = fromMS(first), fromMS(last)
		out = append(out, u)
	}
	return out, rows.Err()
}

// StationRuns returns, per station, the latest run issued there since since on line (or
// every line), stations in name order.
func (s *Store) StationRuns(ctx context.Context, line string, since time.Time) ([]Run, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+runCols+` FROM runs WHERE station != '' AND issued_at >= ? AND (? = '' OR line = ?)
		ORDER BY issued_at DESC LIMIT 5000`, ms(since), line, line)
	if err != nil {
		return nil, fmt.Errorf("station runs: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	out := []Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("station runs: %w", err)
		}
		if !seen[r.Station] {
			seen[r.Station] = true
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Station < out[j].Station })
	return out, rows.Err()
}

// DeviceQuery filters SearchDevices. Empty fields match everything.
type DeviceQuery struct {
	Line string // AllLines for every line
	// Text matches a substring of the serial or the MAC, in any case; a MAC may be written
	// with dashes or without separators.
	Text    string
	Status  string // a run status, or "silent" is left to the caller
	Product string // substring, any case
	Station string // exact
	// Since and Until bound when the device was last seen.
	Since, Until time.Time
	Limit        int
}

// likeEscape makes s a literal LIKE pattern (with ESCAPE '\').
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

// macText is a MAC search text in the stored form: lower case, colons; a bare hex string
// is matched against the MAC without its colons.
func macText(s string) (pattern string, bare bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.ReplaceAll(s, "-", ":")
	if !strings.Contains(s, ":") {
		return s, true
	}
	return s, false
}

// SearchDevices lists devices matching q, most recently seen first, at most q.Limit; more
// reports whether more matched.
func (s *Store) SearchDevices(ctx context.Context, q DeviceQuery) (devs []Device, more bool, err error) {
	if q.Limit <= 0 {
		q.Limit = 500
	}
	where := []string{"d.last_seen >= ?"}
	args := []any{ms(q.Since)}
	if !q.Until.IsZero() {
		where = append(where, "d.last_seen < ?")
		args = append(args, ms(q.Until))
	}
	if q.Line != "" {
		where = append(where, "d.line = ?")
		args = append(args, q.Line)
	}
	if t := strings.TrimSpace(q.Text); t != "" {
		mac, bare := macText(t)
		macExpr := "d.mac"
		if bare {
			macExpr = "REPLACE(d.mac, ':', '')"
		}
		where = append(where, `(LOWER(d.serial) LIKE ? ESCAPE '\' OR `+macExpr+` LIKE ? ESCAPE '\')`)
		args = append(args, likeEscape(t), likeEscape(mac))
	}
	if q.Product != "" {
		where = append(where, `LOWER(d.product) LIKE ? ESCAPE '\'`)
		args = append(args, likeEscape(q.Product))
	}
	if q.Station != "" {
		where = append(where, "d.station = ?")
		args = append(args, q.Station)
	}
	if q.Status != "" {
		where = append(where, "EXISTS (SELECT 1 FROM runs r WHERE r.run_id = d.last_run_id AND r.status = ?)")
		args = append(args, q.Status)
	}
	args = append(args, q.Limit+1)
	rows, err := s.r.QueryContext(ctx, `SELECT d.mac FROM devices d WHERE `+strings.Join(where, " AND ")+
		` ORDER BY d.last_seen DESC, d.mac DESC LIMIT ?`, args...)
	if err != nil {
		return nil, false, fmt.Errorf("search devices: %w", err)
	}
	var macs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("search devices: %w", err)
		}
		macs = append(macs, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("search devices: %w", err)
	}
	if len(macs) > q.Limit {
		macs, more = macs[:q.Limit], true
	}
	devs = []Device{}
	for _, m := range macs {
		d, err := s.Device(ctx, m)
		if err != nil {
			return nil, false, err
		}
		devs = append(devs, d)
	}
	return devs, more, nil
}

// LineStats are a line's figures over a window for the line overview.
type LineStats struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Started: runs issued in the window; Passed, Failed, Errors: runs finished in it.
	Started int64 `json:"started"`
	Passed  int64 `json:"passed"`
	Failed  int64 `json:"failed"`
	Errors  int64 `json:"errors"`
	// FirstPassYield is the share of the devices whose first run finished in the window
	// that passed on it; FirstPass and FirstTried are its parts.
	FirstPassYield float64 `json:"first_pass_yield"`
	FirstPass      int64   `json:"first_pass"`
	FirstTried     int64   `json:"first_tried"`
	// DevicesPerHour: distinct serials passed over the window's hours.
	DevicesPerHour float64 `json:"devices_per_hour"`
	// MedianTaktS is the median time between two passed devices coming off the line;
	// MedianCycleS the median time from job to result of a passed run.
	MedianTaktS  float64 `json:"median_takt_s"`
	MedianCycleS float64 `json:"median_cycle_s"`
	// Pareto is the failing steps, most failures first (at most 10).
	Pareto []StepFailures `json:"pareto"`
}

// StepFailures is one failing step of the Pareto: how often it failed, its share of the
// failures, and what was measured on the failing runs.
type StepFailures struct {
	Step     string `json:"step"`
	Check    string `json:"check,omitempty"`
	Scenario string `json:"scenario,omitempty"`
	Failures int64  `json:"failures"`
	// Share of all failed runs of the window (0..1).
	Share       float64          `json:"share"`
	LastMessage string           `json:"last_message,omitempty"`
	Measured    []MeasuredValues `json:"measured,omitempty"`
	// Limits is what the step was checked against (its scenario parameters), filled in by
	// the reader that knows the scenarios.
	Limits string `json:"limits,omitempty"`
}

// MeasuredValues summarises one measurement over a step's failures.
type MeasuredValues struct {
	Name  string   `json:"name"`
	Unit  string   `json:"unit,omitempty"`
	Count int64    `json:"count"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	Last  string   `json:"last,omitempty"`
}

// LineStats computes the overview figures of line (AllLines: every line) over [since, until).
func (s *Store) LineStats(ctx context.Context, line string, since, until time.Time) (LineStats, error) {
	st := LineStats{Since: since.UTC(), Until: until.UTC(), Pareto: []StepFailures{}}
	a, b := ms(since), ms(until)
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM runs WHERE issued_at >= ? AND issued_at < ? AND (? = '' OR line = ?)),
		COALESCE(SUM(CASE WHEN status = 'pass' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN status = 'fail' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0)
		FROM runs WHERE result IS NOT NULL AND finished_at >= ? AND finished_at < ? AND (? = '' OR line = ?)`,
		a, b, line, line, a, b, line, line).Scan(&st.Started, &st.Passed, &st.Failed, &st.Errors)
	if err != nil {
		return LineStats{}, fmt.Errorf("line stats: %w", err)
	}
	// Every finished run of the window, oldest first: first-pass yield, takt, cycle times.
	rows, err := s.r.QueryContext(ctx, `SELECT serial, status, issued_at, finished_at FROM runs
		WHERE result IS NOT NULL AND finished_at >= ? AND finished_at < ? AND (? = '' OR line = ?)
		ORDER BY finished_at LIMIT 200000`, a, b, line, line)
	if err != nil {
		return LineStats{}, fmt.Errorf("line stats: %w", err)
	}
	first := map[string]bool{}
	passedSerials := map[string]bool{}
	var takts, cycles []float64
	var lastPass int64
	for rows.Next() {
		var serial, status string
		var issued, finished int64
		if err := rows.Scan(&serial, &status, &issued, &finished); err != nil {
			rows.Close()
			return LineStats{}, fmt.Errorf("line stats: %w", err)
		}
		if _, ok := first[serial]; !ok {
			first[serial] = status == string(protocol.StatusPass)
		}
		if status == string(protocol.StatusPass) {
			passedSerials[serial] = true
			if lastPass != 0 {
				takts = append(takts, float64(finished-lastPass)/1000)
			}
			lastPass = finished
			cycles = append(cycles, float64(finished-issued)/1000)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return LineStats{}, fmt.Errorf("line stats: %w", err)
	}
	// A serial with an earlier run before the window was not on its first pass.
	for serial := range first {
		var earlier int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE serial = ? AND result IS NOT NULL AND finished_at < ?`, serial, a).Scan(&earlier); err != nil {
			return LineStats{}, fmt.Errorf("line stats: %w", err)
		}
		if earlier > 0 {
			delete(first, serial)
		}
	}
	for _, ok := range first {
		st.FirstTried++
		if ok {
			st.FirstPass++
		}
	}
	if st.FirstTried > 0 {
		st.FirstPassYield = float64(st.FirstPass) / float64(st.FirstTried)
	}
	if h := until.Sub(since).Hours(); h > 0 {
		st.DevicesPerHour = float64(len(passedSerials)) / h
	}
	st.MedianTaktS, st.MedianCycleS = median(takts), median(cycles)
	if st.Pareto, err = s.pareto(ctx, line, a, b, st.Failed); err != nil {
		return LineStats{}, err
	}
	return st, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// pareto lists the steps failed runs failed at, most first, with what was measured on them.
func (s *Store) pareto(ctx context.Context, line string, a, b, failed int64) ([]StepFailures, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT failed_step, COUNT(*), MAX(scenario) FROM runs
		WHERE status = 'fail' AND failed_step != '' AND finished_at >= ? AND finished_at < ? AND (? = '' OR line = ?)
		GROUP BY failed_step ORDER BY COUNT(*) DESC, failed_step LIMIT 10`, a, b, line, line)
	if err != nil {
		return nil, fmt.Errorf("failing steps: %w", err)
	}
	out := []StepFailures{}
	for rows.Next() {
		var f StepFailures
		if err := rows.Scan(&f.Step, &f.Failures, &f.Scenario); err != nil {
			rows.Close()
			return nil, fmt.Errorf("failing steps: %w", err)
		}
		if failed > 0 {
			f.Share = float64(f.Failures) / float64(failed)
		}
		out = append(out, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failing steps: %w", err)
	}
	for i := range out {
		f := &out[i]
		// The step's own record on the failing runs: its check, its last message, and its
		// measurements.
		err := s.r.QueryRowContext(ctx, `SELECT st.check_kind, st.message FROM steps st JOIN runs r ON r.run_id = st.run_id
			WHERE r.status = 'fail' AND r.failed_step = ? AND st.name = ? AND r.finished_at >= ? AND r.finished_at < ? AND (? = '' OR r.line = ?)
			ORDER BY r.finished_at DESC LIMIT 1`, f.Step, f.Step, a, b, line, line).Scan(&f.Check, &f.LastMessage)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("failing step %q: %w", f.Step, err)
		}
		mrows, err := s.r.QueryContext(ctx, `SELECT m.name, MAX(m.unit), COUNT(*), MIN(m.value), MAX(m.value), MAX(m.text)
			FROM measurements m JOIN steps st ON st.run_id = m.run_id AND st.idx = m.step_idx JOIN runs r ON r.run_id = m.run_id
			WHERE r.status = 'fail' AND r.failed_step = ? AND st.name = ? AND r.finished_at >= ? AND r.finished_at < ? AND (? = '' OR r.line = ?)
			GROUP BY m.name ORDER BY m.name LIMIT 20`, f.Step, f.Step, a, b, line, line)
		if err != nil {
			return nil, fmt.Errorf("failing step %q measurements: %w", f.Step, err)
		}
		for mrows.Next() {
			var mv MeasuredValues
			var lo, hi sql.NullFloat64
			if err := mrows.Scan(&mv.Name, &mv.Unit, &mv.Count, &lo, &hi, &mv.Last); err != nil {
				mrows.Close()
				return nil, fmt.Errorf("failing step %q measurements: %w", f.Step, err)
			}
			if lo.Valid {
				mv.Min, mv.Max = &lo.Float64, &hi.Float64
				mv.Last = ""
			}
			f.Measured = append(f.Measured, mv)
		}
		mrows.Close()
		if err := mrows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// OnLineNow counts the devices on line (AllLines: every line) whose latest run is under way
// and not silent at now: no result yet, the job not expired, and, for agents that send
// heartbeats, heard within timeout.
func (s *Store) OnLineNow(ctx context.Context, line string, now time.Time, timeout time.Duration) (int64, error) {
	var n int64
	heard := ms(now.Add(-timeout))
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs r JOIN devices d ON d.last_run_id = r.run_id
		WHERE r.result IS NULL AND r.expires_at > ? AND (? = '' OR r.line = ?)
		AND (r.heartbeat = 0 OR r.heard_at > ? OR r.updated_at > ?)`, ms(now), line, line, heard, heard).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("devices on the line: %w", err)
	}
	return n, nil
}

// ExportExtraColumns follow CSVHeader in a window's CSV export: where the device sat, and the
// run's line (last, where it was before stations).
var ExportExtraColumns = []string{"station", "station_source", "station_port", "line"}

func exportExtra(r RunDetail) []string {
	return []string{r.Station, r.StationSource, r.StationPort, r.Line}
}

// runConds are the SQL conditions (each starting with AND) of f's device filter on runs.
func (f FiguresFilter) runConds() (string, []any) {
	var b strings.Builder
	var args []any
	if t := strings.TrimSpace(f.Text); t != "" {
		mac, bare := macText(t)
		macExpr := "mac"
		if bare {
			macExpr = "REPLACE(mac, ':', '')"
		}
		b.WriteString(` AND (LOWER(serial) LIKE ? ESCAPE '\' OR ` + macExpr + ` LIKE ? ESCAPE '\')`)
		args = append(args, likeEscape(t), likeEscape(mac))
	}
	switch f.Status {
	case "":
	case "silent":
		b.WriteString(` AND status IN ('issued', 'running')`)
	default:
		b.WriteString(` AND status = ?`)
		args = append(args, f.Status)
	}
	if f.Product != "" {
		b.WriteString(` AND LOWER(product) LIKE ? ESCAPE '\'`)
		args = append(args, likeEscape(f.Product))
	}
	if f.Station != "" {
		b.WriteString(` AND station = ?`)
		args = append(args, f.Station)
	}
	return b.String(), args
}
