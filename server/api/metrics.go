package api

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus metrics. Register them on a registry owned by the
// caller (no global registry, so tests can run servers side by side).
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	bytes       *prometheus.CounterVec
	inflight    prometheus.Gauge
	hellos      *prometheus.CounterVec
	events      prometheus.Counter
	results     *prometheus.CounterVec
	badRequests *prometheus.CounterVec
	line        *lineMetrics // metrics_line.go
	imageBytes  *prometheus.CounterVec
	// imageSent mirrors imageBytes for the dashboard (a Prometheus counter is not read back).
	imageSent sync.Map // file -> *atomic.Int64
}

// ImageHTTPBytes returns the bytes sent over HTTP of each configured image file so far.
func (m *Metrics) ImageHTTPBytes() map[string]int64 {
	out := map[string]int64{}
	m.imageSent.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flashline_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code."}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "flashline_http_request_duration_seconds",
			Help: "Time to answer HTTP requests, by route pattern.", Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 120, 600}},
			[]string{"route"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flashline_http_response_bytes_total",
			Help: "Bytes of HTTP response bodies, by route pattern."}, []string{"route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flashline_http_requests_in_flight",
			Help: "HTTP requests being answered (downloads and dashboard streams included)."}),
		hellos: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flashline_hello_total",
			Help: "Agent hellos by outcome (job, no_rule, error)."}, []string{"outcome"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "flashline_events_received_total",
			Help: "Run events received from agents (repeats included)."}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flashline_results_total",
			Help: "Final results acknowledged, by status and whether it was a repeat."}, []string{"status", "duplicate"}),
		badRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flashline_bad_requests_total",
			Help: "Requests refused with a 4xx, by reason."}, []string{"reason"}),
	}
	m.imageBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flashline_image_http_bytes_total",
		Help: "Bytes of configured image files sent over HTTP (plain downloads and BitTorrent web seed requests), by file."}, []string{"image"})
	reg.MustRegister(m.requests, m.duration, m.bytes, m.inflight, m.hellos, m.events, m.results, m.badRequests, m.imageBytes)
	m.line = newLineMetrics(reg)
	return m
}

// Instrument counts and times every request by the ServeMux pattern that answered it.
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inflight.Inc()
		rw := &recorder{ResponseWriter: w}
		defer func() {
			m.inflight.Dec()
			route := routeLabel(r.Pattern) // set by the ServeMux on this same request
			code := rw.code
			if r.Context().Err() != nil && (code == 0 || code >= 500) {
				// The client went away before the answer: not a server error.
				code = StatusClientClosed
			}
			if code == 0 {
				code = http.StatusOK
			}
			m.requests.WithLabelValues(route, methodLabel(r.Method), codeLabel(code)).Inc()
			m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
			m.bytes.WithLabelValues(route).Add(float64(rw.n))
		}()
		next.ServeHTTP(rw, r)
	})
}

// methodLabel keeps the method label to the methods HTTP defines: any other string a client
// sends (a method is any token, up to the header limit) would be a new time series kept
// forever, and /metrics and the memory would grow with every one.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// codeLabel keeps the status label to real status codes (handlers choose them, but one
// outside 100-599 must not make a series per value).
func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// recorder notes the status and body size. It passes ReadFrom through so that file downloads
// keep using sendfile(2), and Flush/Hijack through for the dashboard's event stream.
type recorder struct {
	http.ResponseWriter
	code int
	n    int64
}

// clientClosed notes that the handler found its client gone (ClientClosed).
func (r *recorder) clientClosed() {
	if r.code == 0 {
		r.code = StatusClientClosed
	}
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.n += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{r.ResponseWriter}, src)
	}
	r.n += n
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the real writer (deadlines for long downloads).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// writerOnly hides ReadFrom so io.Copy cannot recurse into recorder.ReadFrom.
type writerOnly struct{ io.Writer }

// imageCounter returns the wrapper that counts the bytes sent of each of files; any other
// name is left to the route counter, so a client cannot make a series per name it tries.
func (m *Metrics) imageCounter(files []string) func(http.ResponseWriter, string) http.ResponseWriter {
	known := make(map[string]counter, len(files))
	for _, f := range files {
		n, _ := m.imageSent.LoadOrStore(f, new(atomic.Int64))
		known[f] = counter{m.imageBytes.WithLabelValues(f), n.(*atomic.Int64)}
	}
	return func(w http.ResponseWriter, name string) http.ResponseWriter {
		c, ok := known[name]
		if !ok {
			return w
		}
		return &countingWriter{ResponseWriter: w, c: c}
	}
}

// countingWriter adds what is written to a counter, keeping ReadFrom for sendfile(2) (a
// range sent by sendfile is counted when it is done).
type countingWriter struct {
	http.ResponseWriter
	c counter
}

type counter struct {
	prom prometheus.Counter
	n    *atomic.Int64
}

func (c counter) add(n int64) {
	c.prom.Add(float64(n))
	c.n.Add(n)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.c.add(int64(n))
	return n, err
}

func (w *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	w.c.add(int64(n))
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
