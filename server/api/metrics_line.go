package api

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/store"
)

// maxStepLabels bounds the step label of flashline_step_failures_total: step names come
// from the scenarios (a few dozen on a line), but a device may report any name, and each
// would otherwise be a series kept forever.
const maxStepLabels = 64

// lineMetrics are the line's production figures, beside the HTTP ones.
type lineMetrics struct {
	runDuration  *prometheus.HistogramVec
	stepFailures *prometheus.CounterVec
	flashRate    prometheus.Histogram
	flashBytes   prometheus.Counter
	heartbeats   prometheus.Counter

	mu    sync.Mutex
	steps map[string]bool
}

func newLineMetrics(reg prometheus.Registerer) *lineMetrics {
	m := &lineMetrics{
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "flashline_run_duration_seconds",
			Help:    "Time from a device's job to its final result, by status (pass, fail, error).",
			Buckets: []float64{30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600}}, []string{"status"}),
		stepFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flashline_step_failures_total",
			Help: "Runs failed at each step, by step name (at most 64 names; later ones count as \"other\")."}, []string{"step"}),
		flashRate: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flashline_flash_throughput_bytes_per_second",
			Help:    "Image bytes written per second of a device's flash (decompressed image size over flash duration).",
			Buckets: prometheus.ExponentialBuckets(1<<20, 2, 12)}), // 1 MiB/s .. 2 GiB/s
		flashBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "flashline_flash_bytes_total",
			Help: "Image bytes devices reported written."}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "flashline_heartbeats_total",
			Help: "Heartbeats received from agents."}),
		steps: map[string]bool{},
	}
	reg.MustRegister(m.runDuration, m.stepFailures, m.flashRate, m.flashBytes, m.heartbeats)
	return m
}

// stepLabel is name, or "other" once maxStepLabels names are in use.
func (m *lineMetrics) stepLabel(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.steps[name] {
		return name
	}
	if len(m.steps) >= maxStepLabels || name == "" || len(name) > 128 {
		return "other"
	}
	m.steps[name] = true
	return name
}

// observeResult records a new result's duration, failed step and flash rate.
func (s *Server) observeResult(ctx context.Context, res protocol.Result) {
	m := s.o.Metrics.line
	if rs, ok := s.o.Store.(interface {
		Run(ctx context.Context, runID string) (store.Run, error)
	}); ok {
		if run, err := rs.Run(ctx, res.RunID); err == nil && run.FinishedAt != nil {
			if d := run.FinishedAt.Sub(run.IssuedAt).Seconds(); d >= 0 {
				m.runDuration.WithLabelValues(string(res.Status)).Observe(d)
			}
		}
	}
	if res.Status == protocol.StatusFail && res.FailedStep != "" {
		m.stepFailures.WithLabelValues(m.stepLabel(res.FailedStep)).Inc()
	}
	if f := res.Flash; f != nil && f.Bytes > 0 {
		m.flashBytes.Add(float64(f.Bytes))
		if f.DurationMS > 0 {
			m.flashRate.Observe(float64(f.Bytes) / (float64(f.DurationMS) / 1000))
		}
	}
}

// routeLabel is the ServeMux pattern without its method ("POST /api/v1/hello" ->
// "/api/v1/hello"): the method has a label of its own.
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		return strings.TrimLeft(pattern[i+1:], " \t")
	}
	return pattern
}

// StatusClientClosed is the code label of a request the client abandoned before it was
// answered (nginx's 499): not the server's failure, so not a 5xx.
const StatusClientClosed = 499

// ClientClosed tells Metrics.Instrument, through any wrappers that Unwrap, that the client
// of this request went away before it was answered, so the request is counted as
// StatusClientClosed. Handlers call it instead of writing an answer nobody reads.
func ClientClosed(w http.ResponseWriter) {
	for {
		if c, ok := w.(interface{ clientClosed() }); ok {
			c.clientClosed()
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// readErr notes the error of the reader under a decoder: a body cut short by the connection
// (io.ErrUnexpectedEOF from net/http) is told apart from JSON cut short by the client.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
