package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/store"
)

// LineView configures the line overview. Every field is optional.
type LineView struct {
	// HeartbeatTimeout: a run whose agent sends heartbeats is SILENT after this without
	// one (default 60s); other agents' runs when their job expires.
	HeartbeatTimeout time.Duration
	// Stations are the configured stations, shown in this order even while free.
	Stations []string
	// Shifts are the shift start times as offsets from local midnight, sorted.
	Shifts []time.Duration
	// Plans tell the step a failure was checked against (the Pareto's limits).
	Plans interface {
		Plan(file string) (jobs.Plan, error)
	}
}

// LineViewStore is what the overview reads beyond Store (store.Store and store.Plant have it).
type LineViewStore interface {
	StationRuns(ctx context.Context, line string, since time.Time) ([]store.Run, error)
	LineStats(ctx context.Context, line string, since, until time.Time) (store.LineStats, error)
	ListUnmatched(ctx context.Context, since time.Time, limit int) ([]store.Unmatched, error)
	SearchDevices(ctx context.Context, q store.DeviceQuery) ([]store.Device, bool, error)
}

func (d *Dashboard) heartbeatTimeout() time.Duration {
	if d.o.LineView.HeartbeatTimeout > 0 {
		return d.o.LineView.HeartbeatTimeout
	}
	return 60 * time.Second
}

// decorate sets when a run counts as SILENT, which only the dashboard knows (the timeout).
func (d *Dashboard) decorate(r *store.Run) {
	if r == nil {
		return
	}
	if t := r.SilentAfter(d.heartbeatTimeout()); !t.IsZero() {
		r.SilentAt = &t
	}
}

func (d *Dashboard) lineView() (LineViewStore, bool) {
	lv, ok := d.o.Store.(LineViewStore)
	return lv, ok
}

// StationView is one station of the overview: who is there (its latest run), or free.
type StationView struct {
	Name string     `json:"name"`
	Run  *store.Run `json:"run,omitempty"`
}

// Window is one period of the line's figures.
type Window struct {
	Name  string          `json:"name"` // hour, shift, today
	Label string          `json:"label"`
	Stats store.LineStats `json:"stats"`
}

// Overview is what /dashboard/api/line answers.
type Overview struct {
	Line      string            `json:"line"`
	Now       time.Time         `json:"now"`
	Stations  []StationView     `json:"stations"`
	Windows   []Window          `json:"windows"`
	Unmatched []store.Unmatched `json:"unmatched"`
}

// windows are the last hour, the current shift and today, in local time.
func (d *Dashboard) windows(now time.Time) []Window {
	local := now.Local()
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, local.Location())
	shift := midnight
	label := "today"
	if len(d.o.LineView.Shifts) > 0 {
		// The latest start at or before now; before the first start of the day, the last
		// shift of yesterday is still on.
		last := d.o.LineView.Shifts[len(d.o.LineView.Shifts)-1]
		shift = midnight.Add(-24 * time.Hour).Add(last)
		for _, off := range d.o.LineView.Shifts {
			if t := midnight.Add(off); !t.After(local) {
				shift = t
			}
		}
		label = "shift since " + shift.Format("15:04")
	}
	return []Window{
		{Name: "hour", Label: "last hour", Stats: store.LineStats{Since: now.Add(-time.Hour), Until: now}},
		{Name: "shift", Label: label, Stats: store.LineStats{Since: shift, Until: now}},
		{Name: "today", Label: "today since 00:00", Stats: store.LineStats{Since: midnight, Until: now}},
	}
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	lv, ok := d.lineView()
	if !ok {
		d.fail(w, r, http.StatusNotImplemented, "this store has no line view")
		return
	}
	line, err := d.lineParam(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	now := time.Now()
	ov := Overview{Line: line, Now: now.UTC(), Stations: []StationView{}, Unmatched: []store.Unmatched{}}
	runs, err := lv.StationRuns(ctx, line, now.Add(-d.o.Window))
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	byName := map[string]*store.Run{}
	for i := range runs {
		d.decorate(&runs[i])
		byName[runs[i].Station] = &runs[i]
	}
	listed := map[string]bool{}
	for _, name := range d.o.LineView.Stations {
		listed[name] = true
		ov.Stations = append(ov.Stations, StationView{Name: name, Run: byName[name]})
	}
	for i := range runs {
		if !listed[runs[i].Station] {
			ov.Stations = append(ov.Stations, StationView{Name: runs[i].Station, Run: &runs[i]})
		}
	}
	for _, win := range d.windows(now) {
		st, err := lv.LineStats(ctx, line, win.Stats.Since, win.Stats.Until)
		if err != nil {
			d.fail(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		d.limits(&st)
		win.Stats = st
		ov.Windows = append(ov.Windows, win)
	}
	if ov.Unmatched, err = lv.ListUnmatched(ctx, now.Add(-d.o.Window), 50); err != nil {
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ov)
}

// limits fills in what each failing step was checked against, from its scenario.
func (d *Dashboard) limits(st *store.LineStats) {
	if d.o.LineView.Plans == nil {
		return
	}
	for i := range st.Pareto {
		f := &st.Pareto[i]
		if p, err := d.o.LineView.Plans.Plan(f.Scenario); err == nil {
			if s, ok := p.Step(f.Step); ok {
				f.Limits = s.Limits
				if f.Check == "" {
					f.Check = s.Check
				}
			}
		}
	}
}

// MaxSearchRows is the most devices one search answers; the page says so when it is hit.
const MaxSearchRows = 500

// SearchResult is what /dashboard/api/search answers.
type SearchResult struct {
	Devices []store.Device `json:"devices"`
	// Limit is the most rows answered; More is true when more devices matched.
	Limit int  `json:"limit"`
	More  bool `json:"more"`
}

// query reads the filter of a search or export: ?q= (serial or MAC substring), ?status=,
// ?product=, ?station=, ?since=, ?until= (RFC 3339), ?line=.
func (d *Dashboard) query(r *http.Request) (store.DeviceQuery, error) {
	v := r.URL.Query()
	line, err := d.lineParam(r)
	if err != nil {
		return store.DeviceQuery{}, err
	}
	since, until, err := windowParams(r)
	if err != nil {
		return store.DeviceQuery{}, err
	}
	q := store.DeviceQuery{Line: line, Text: v.Get("q"), Status: v.Get("status"), Product: v.Get("product"),
		Station: v.Get("station"), Since: since, Until: until, Limit: MaxSearchRows}
	for _, f := range []struct{ name, v string }{{"q", q.Text}, {"product", q.Product}, {"station", q.Station}} {
		if len(f.v) > 256 {
			return q, fmt.Errorf("%s: at most 256 bytes", f.name)
		}
	}
	switch q.Status {
	case "", "issued", "running", "pass", "fail", "error", "silent":
	default:
		return q, fmt.Errorf("status %q: want issued, running, pass, fail, error or silent", q.Status)
	}
	if n, err := strconv.Atoi(v.Get("limit")); err == nil && n > 0 && n < q.Limit {
		q.Limit = n
	}
	return q, nil
}

func (d *Dashboard) search(w http.ResponseWriter, r *http.Request) {
	lv, ok := d.lineView()
	if !ok {
		d.fail(w, r, http.StatusNotImplemented, "this store cannot search")
		return
	}
	q, err := d.query(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	silent := q.Status == "silent"
	if silent {
		// SILENT is decided here (the heartbeat timeout); the store finds the runs under way.
		q.Status = ""
	}
	devs, more, err := lv.SearchDevices(r.Context(), q)
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	out := SearchResult{Devices: []store.Device{}, Limit: q.Limit, More: more}
	now := time.Now()
	for i := range devs {
		d.decorate(devs[i].Run)
		if silent && (devs[i].Run == nil || devs[i].Run.SilentAt == nil || devs[i].Run.SilentAt.After(now)) {
			continue
		}
		out.Devices = append(out.Devices, devs[i])
	}
	writeJSON(w, http.StatusOK, out)
}

// clientGone reports (and logs) a request whose client went away: nothing to answer, and
// not the server's failure.
func (d *Dashboard) clientGone(r *http.Request, err error) bool {
	if r.Context().Err() == nil && !errors.Is(err, context.Canceled) {
		return false
	}
	d.log.Info("dashboard client went away", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	return true
}

// exportFilter is the search filter as an export's: a window of issue times, plus the
// device filter.
func exportFilter(q store.DeviceQuery) store.FiguresFilter {
	return store.FiguresFilter{Line: q.Line, Since: q.Since, Until: q.Until, Text: strings.TrimSpace(q.Text),
		Status: q.Status, Product: q.Product, Station: q.Station}
}
