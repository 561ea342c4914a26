// Package dashboard is the line operator's web page: the devices on the line now (status,
// phase, current step, flash progress, PASS/FAIL), each device's history with its steps,
// measurements and phase timings, a reset back to provisioning, and CSV/JSON export. It is
// one embedded HTML/CSS/JS bundle (no CDN: line networks are often offline) fed by a small
// JSON API and a server-sent event stream that pushes every change of a run as it happens.
package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashline/flashline/server/operatorauth"
	"github.com/flashline/flashline/server/store"
)

//go:embed static
var static embed.FS

// Store is what the dashboard reads and changes.
type Store interface {
	Devices(ctx context.Context, since time.Time, limit int) ([]store.Device, error)
	Device(ctx context.Context, mac string) (store.Device, error)
	Run(ctx context.Context, runID string) (store.Run, error)
	History(ctx context.Context, serial string, opt store.HistoryOptions) ([]store.RunDetail, error)
	ResetDevice(ctx context.Context, mac string) error
	OperatorStore
	ExportJSON(ctx context.Context, w io.Writer, serial string) error
	ExportCSV(ctx context.Context, w io.Writer, serial string) error
	LineStore
}

// LineStore is what the dashboard reads of the lines sharing a plant database.
type LineStore interface {
	Line() string
	DevicesOn(ctx context.Context, line string, since time.Time, limit int) ([]store.Device, error)
	Figures(ctx context.Context, f store.FiguresFilter) (store.Figures, error)
	ExportRuns(ctx context.Context, w io.Writer, f store.FiguresFilter, format string) error
	Backlog(ctx context.Context) (store.Backlog, error)
}

// Options configures the dashboard.
type Options struct {
	Store  Store
	Logger *slog.Logger
	// Window is how far back "on the line now" looks (default 12h).
	Window time.Duration
	// Registerer, when set, gets a gauge of connected live views.
	Registerer prometheus.Registerer
	// MaxClients caps the live streams (default 64): each holds a connection, a goroutine
	// and a buffer, and a page left open in every browser of the plant should not add up to
	// the server's memory.
	MaxClients int
	// Operators authorises actions and guards the views (operators.go); nil: views open,
	// every action refused.
	Operators *operatorauth.Guard
	// LineView configures the line overview (lineview.go).
	LineView LineView
	// Swarm, when set, gives the swarm panel's figures (swarm.go); nil hides the panel.
	Swarm func() []SwarmImage
}

// Dashboard serves the page, its API and the live stream. Start Run before serving.
type Dashboard struct {
	o       Options
	log     *slog.Logger
	changed chan string
	clients prometheus.Gauge

	mu   sync.Mutex
	subs map[chan []byte]struct{}
	done bool
}

// New returns a dashboard.
func New(o Options) *Dashboard {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Window <= 0 {
		o.Window = 12 * time.Hour
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 64
	}
	if o.Operators == nil {
		o.Operators = noOperators()
	}
	d := &Dashboard{o: o, log: o.Logger, changed: make(chan string, 4096), subs: map[chan []byte]struct{}{},
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flashline_dashboard_live_clients", Help: "Dashboard pages connected to the live stream."})}
	if o.Registerer != nil {
		o.Registerer.MustRegister(d.clients)
	}
	return d
}

// RunChanged queues a run for broadcast; it never blocks the request that changed it.
func (d *Dashboard) RunChanged(runID string) {
	select {
	case d.changed <- runID:
	default:
		// Overrun: every view reloads everything instead.
		d.broadcast(sse("reload", struct{}{}))
	}
}

// Run broadcasts changes until ctx ends, then ends every live stream. Changes are gathered
// for a moment so that a burst of events becomes one update per device.
func (d *Dashboard) Run(ctx context.Context) {
	defer d.closeAll()
	pending := map[string]bool{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-d.changed:
			pending[id] = true
		case <-tick.C:
			for id := range pending {
				delete(pending, id)
				d.publishRun(ctx, id)
			}
		}
	}
}

func (d *Dashboard) publishRun(ctx context.Context, runID string) {
	r, err := d.o.Store.Run(ctx, runID)
	if err != nil {
		d.log.Warn("dashboard: read run", "run", runID, "err", err)
		return
	}
	dev, err := d.o.Store.Device(ctx, r.MAC)
	if err != nil {
		d.log.Warn("dashboard: read device", "mac", r.MAC, "err", err)
		return
	}
	d.decorate(dev.Run)
	d.broadcast(sse("device", dev))
}

func sse(event string, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte("{}")
	}
	return []byte("event: " + event + "\ndata: " + string(b) + "\n\n")
}

func (d *Dashboard) broadcast(msg []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.subs {
		select {
		case ch <- msg:
		default:
			// A view that cannot keep up is cut off; its browser reconnects and reloads.
			delete(d.subs, ch)
			close(ch)
			d.clients.Dec()
		}
	}
}

// Why a live stream is refused.
var (
	errShuttingDown = errors.New("shutting down")
	errTooManyViews = errors.New("too many live views are open")
)

func (d *Dashboard) subscribe() (chan []byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return nil, errShuttingDown
	}
	if len(d.subs) >= d.o.MaxClients {
		return nil, errTooManyViews
	}
	ch := make(chan []byte, 256)
	d.subs[ch] = struct{}{}
	d.clients.Inc()
	return ch, nil
}

func (d *Dashboard) unsubscribe(ch chan []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.subs[ch]; ok {
		delete(d.subs, ch)
		close(ch)
		d.clients.Dec()
	}
}

func (d *Dashboard) closeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = true
	for ch := range d.subs {
		delete(d.subs, ch)
		close(ch)
		d.clients.Dec()
	}
}

// Clients is the number of connected live views.
func (d *Dashboard) Clients() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.subs)
}

// Register adds the dashboard's routes to mux.
func (d *Dashboard) Register(mux *http.ServeMux) {
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	// Every route goes through the operator guard (operators.go): views through view, the
	// state-changing ones through action.
	view, action := d.o.Operators.View, d.o.Operators.Action
	mux.Handle("GET /{$}", view(files))
	mux.Handle("GET /static/", view(http.StripPrefix("/static", files)))
	mux.Handle("GET /dashboard/api/devices", view(http.HandlerFunc(d.devices)))
	mux.Handle("GET /dashboard/api/history", view(http.HandlerFunc(d.history)))
	mux.Handle("GET /dashboard/api/export", view(http.HandlerFunc(d.export)))
	mux.Handle("GET /dashboard/api/status", view(http.HandlerFunc(d.status)))
	mux.Handle("GET /dashboard/api/figures", view(http.HandlerFunc(d.figures)))
	mux.Handle("GET /dashboard/api/line", view(http.HandlerFunc(d.overview)))
	mux.Handle("GET /dashboard/api/search", view(http.HandlerFunc(d.search)))
	mux.Handle("GET /dashboard/api/swarm", view(http.HandlerFunc(d.swarm)))
	mux.Handle("POST /dashboard/api/devices/{mac}/reset", action(http.HandlerFunc(d.reset)))
	mux.Handle("GET /dashboard/events", view(http.HandlerFunc(d.events)))
	d.registerOperators(mux, view)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if code >= 500 && d.clientGone(r, nil) {
		return
	}
	lvl := slog.LevelWarn
	if code >= 500 {
		lvl = slog.LevelError
	}
	d.log.Log(r.Context(), lvl, "dashboard request refused", "code", code, "path", r.URL.Path, "remote", r.RemoteAddr, "error", msg)
	writeJSON(w, code, map[string]string{"error": msg})
}

func (d *Dashboard) devices(w http.ResponseWriter, r *http.Request) {
	since := time.Now().Add(-d.o.Window)
	if r.URL.Query().Get("all") != "" {
		since = time.Time{}
	}
	line, err := d.lineParam(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	devs, err := d.o.Store.DevicesOn(r.Context(), line, since, 500)
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	if devs == nil {
		devs = []store.Device{}
	}
	for i := range devs {
		d.decorate(devs[i].Run)
	}
	writeJSON(w, http.StatusOK, devs)
}

func serialParam(r *http.Request) (string, error) {
	s := r.URL.Query().Get("serial")
	if !r.URL.Query().Has("serial") || len(s) > 256 {
		return "", errors.New("want ?serial=SERIAL")
	}
	return s, nil
}

func (d *Dashboard) history(w http.ResponseWriter, r *http.Request) {
	serial, err := serialParam(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	runs, err := d.o.Store.History(r.Context(), serial, store.HistoryOptions{Limit: limit})
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	if runs == nil {
		runs = []store.RunDetail{}
	}
	writeJSON(w, http.StatusOK, runs)
}

func (d *Dashboard) export(w http.ResponseWriter, r *http.Request) {
	if !r.URL.Query().Has("serial") {
		d.exportRuns(w, r)
		return
	}
	serial, err := serialParam(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	name := "flashline-" + strconv.Quote(serial)
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", safeFile(serial)+".json"))
		err = d.o.Store.ExportJSON(r.Context(), w, serial)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", safeFile(serial)+".csv"))
		err = d.o.Store.ExportCSV(r.Context(), w, serial)
	default:
		d.fail(w, r, http.StatusBadRequest, fmt.Sprintf("format %q: want json or csv", f))
		return
	}
	if err != nil {
		d.log.Error("export", "serial", name, "err", err)
	}
}

// safeFile keeps a serial usable as a download's file name.
func safeFile(s string) string {
	b := []byte("flashline-")
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b = append(b, c)
		} else {
			b = append(b, '_')
		}
	}
	return string(b)
}

func (d *Dashboard) reset(w http.ResponseWriter, r *http.Request) {
	mac, err := store.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	actor := operatorauth.Actor(r.Context())
	if err := d.o.Store.ResetDeviceBy(r.Context(), mac, actor, resetDetail(r)); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			d.fail(w, r, http.StatusNotFound, err.Error())
			return
		}
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	d.log.Info("device reset to provisioning by an operator", "mac", mac, "actor", actor, "remote", r.RemoteAddr)
	dev, err := d.o.Store.Device(r.Context(), mac)
	if err == nil {
		d.decorate(dev.Run)
		d.broadcast(sse("device", dev))
	}
	writeJSON(w, http.StatusOK, dev)
}

func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	ch, err := d.subscribe()
	if errors.Is(err, errTooManyViews) {
		d.log.Warn("live view refused: too many open", "max", d.o.MaxClients, "remote", r.RemoteAddr)
		w.Header().Set("Retry-After", "30")
		d.fail(w, r, http.StatusServiceUnavailable, fmt.Sprintf("%d live views are open, the most this server allows: close a dashboard tab (or raise limits.http.max_event_streams)", d.o.MaxClients))
		return
	}
	if err != nil {
		d.fail(w, r, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer d.unsubscribe(ch)
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a live stream outlives any server timeout
	rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// "hello" tells the page to (re)load the full list: after a reconnect it may have missed
	// updates.
	if _, err := w.Write([]byte("retry: 2000\n\n" + string(sse("hello", struct{}{})))); err != nil {
		return
	}
	rc.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			if _, err := w.Write(msg); err != nil {
				return
			}
		case <-ping.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// AllLinesParam is the value of ?line= that means every line of the plant.
const AllLinesParam = "*"

// lineParam is ?line=: a line's name, AllLinesParam for every line; absent means this
// server's own line.
func (d *Dashboard) lineParam(r *http.Request) (string, error) {
	q := r.URL.Query()
	if !q.Has("line") {
		return d.o.Store.Line(), nil
	}
	l := q.Get("line")
	if l == AllLinesParam {
		return store.AllLines, nil
	}
	if l == "" || len(l) > 64 {
		return "", fmt.Errorf("line %q: want a line's name or %s for every line", l, AllLinesParam)
	}
	return l, nil
}

// windowParams are ?since= and ?until= (RFC 3339); absent means the last 24 hours.
func windowParams(r *http.Request) (since, until time.Time, err error) {
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := r.URL.Query().Get(p.name); v != "" {
			if *p.t, err = time.Parse(time.RFC3339, v); err != nil {
				return since, until, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-11-25T06:00:00Z", p.name, v)
			}
		}
	}
	if !since.IsZero() && !until.IsZero() && !until.After(since) {
		return since, until, errors.New("until must be after since")
	}
	return since, until, nil
}

// Status is what /dashboard/api/status answers: the line and its queue for the plant
// database.
type Status struct {
	Line    string        `json:"line"`
	Backlog store.Backlog `json:"backlog"`
}

func (d *Dashboard) status(w http.ResponseWriter, r *http.Request) {
	b, err := d.o.Store.Backlog(r.Context())
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, Status{Line: d.o.Store.Line(), Backlog: b})
}

func (d *Dashboard) filter(r *http.Request) (store.FiguresFilter, error) {
	line, err := d.lineParam(r)
	if err != nil {
		return store.FiguresFilter{}, err
	}
	since, until, err := windowParams(r)
	if err != nil {
		return store.FiguresFilter{}, err
	}
	return store.FiguresFilter{Line: line, Since: since, Until: until}, nil
}

// figures answers a line's (or, with ?line=*, every line's and the plant's) yield and devices
// per hour over ?since= to ?until= (default the last 24 hours).
func (d *Dashboard) figures(w http.ResponseWriter, r *http.Request) {
	f, err := d.filter(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	fig, err := d.o.Store.Figures(r.Context(), f)
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, fig)
}

// exportRuns exports the runs of a line (or every line) over a window.
func (d *Dashboard) exportRuns(w http.ResponseWriter, r *http.Request) {
	q, err := d.query(r)
	f := exportFilter(q)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	format := cmp.Or(r.URL.Query().Get("format"), "json")
	if format != "json" && format != "csv" {
		d.fail(w, r, http.StatusBadRequest, fmt.Sprintf("format %q: want json or csv", format))
		return
	}
	name := "plant"
	if f.Line != store.AllLines {
		name = "line-" + f.Line
	}
	// Rendered into memory first: a refusal (too many runs) must be an error answer, not a
	// truncated download.
	var buf bytes.Buffer
	if err := d.o.Store.ExportRuns(r.Context(), &buf, f, format); err != nil {
		d.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	ct := "application/json"
	if format == "csv" {
		ct = "text/csv; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", safeFile(name)+"."+format))
	w.Write(buf.Bytes())
}
