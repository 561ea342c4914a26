// Package api serves the line server's HTTP endpoints for agents: the /api/v1 protocol (hello
// -> signed job, batched run events, the idempotent final result) and the files jobs point at
// (scenarios and images, with Range, ETag and Last-Modified). Every request body is bounded by
// protocol.MaxBodyBytes; every refusal is a 4xx with a protocol.Error body and a log line, and
// a result is acknowledged only after the store has committed (fsync'd) it.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/store"
)

// Store is what the API needs of the results store.
type Store interface {
	StartRun(ctx context.Context, n store.NewRun) error
	AddEvents(ctx context.Context, runID, serial string, evs []protocol.Event) (store.EventsAck, error)
	PutResult(ctx context.Context, res protocol.Result) (duplicate bool, err error)
	// CheckRunSecret verifies a run's secret and that its job has not expired at now
	// (store.ErrNotFound, store.ErrUnauthorized, store.ErrExpired).
	CheckRunSecret(ctx context.Context, runID, secret string, now time.Time) error
}

// Issuer builds a device's job.
type Issuer interface {
	Issue(ctx context.Context, h protocol.Hello, mac string) (jobs.Issued, error)
}

// Notifier is told when a run changed (a job issued, events, a result), for live views.
// It must not block.
type Notifier interface {
	RunChanged(runID string)
}

// NetbootPhases hands over the server-side phases of the netboot that ended in a device's
// hello (see server/netbootclock), to be stored with the run.
type NetbootPhases interface {
	Hello(mac net.HardwareAddr, ip netip.Addr, t time.Time) []protocol.PhaseTiming
}

// Options configures a Server. Store and Issuer are needed for the agent API; an empty
// ImagesDir or ScenariosDir leaves that part off.
type Options struct {
	Store        Store
	Issuer       Issuer
	ImagesDir    string
	ScenariosDir string
	// BootDir, when set, is served under /boot/ (kernel and initrd for lpxelinux.0).
	BootDir  string
	Notifier Notifier
	// Netboot, when set, supplies the netboot phases the DHCP and TFTP servers saw.
	Netboot NetbootPhases
	Metrics *Metrics
	Logger  *slog.Logger
	// RetryAfter is what a device no rule matches is told to wait before asking again.
	RetryAfter time.Duration
	// Limits bound request bodies and the hello's inventory (zero values: the defaults).
	Limits Limits
	// Now is the clock for job expiry checks (tests); nil means time.Now.
	Now func() time.Time
	// LineView: stations, heartbeats, step counts (lineview.go).
	LineView LineView
	// Torrents, when set, answers GET /images/<file>.torrent for the images in the swarm
	// (server/swarm); it reports false for a file it does not offer, which is then a 404.
	Torrents Torrents
	// ImageFiles are the configured images' files: their downloads (plain and web seed) are
	// counted one by one on /metrics (flashline_image_http_bytes_total).
	ImageFiles []string
}

// Torrents serves image metainfo.
type Torrents interface {
	ServeTorrent(w http.ResponseWriter, r *http.Request, file string) bool
}

// Server is the agent-facing HTTP API.
type Server struct {
	o         Options
	log       *slog.Logger
	images    *fileServer
	scenarios *fileServer
	boot      *fileServer
}

// New returns a Server; it opens the file directories now so a wrong path fails at startup.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 30 * time.Second
	}
	o.Limits.setDefaults()
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, log: o.Logger}
	var err error
	if o.ImagesDir != "" {
		if s.images, err = newFileServer(s, "image", o.ImagesDir, "application/octet-stream"); err != nil {
			return nil, err
		}
		s.images.torrents = o.Torrents
		if o.Metrics != nil && len(o.ImageFiles) > 0 {
			s.images.count = o.Metrics.imageCounter(o.ImageFiles)
		}
	}
	if o.ScenariosDir != "" {
		if s.scenarios, err = newFileServer(s, "scenario", o.ScenariosDir, "application/yaml; charset=utf-8"); err != nil {
			return nil, err
		}
	}
	if o.BootDir != "" {
		if s.boot, err = newFileServer(s, "boot file", o.BootDir, "application/octet-stream"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close releases the file directories.
func (s *Server) Close() error {
	var errs []error
	if s.images != nil {
		errs = append(errs, s.images.root.Close())
	}
	if s.scenarios != nil {
		errs = append(errs, s.scenarios.root.Close())
	}
	if s.boot != nil {
		errs = append(errs, s.boot.root.Close())
	}
	return errors.Join(errs...)
}

// Register adds the server's routes to mux: the agent API when a store and issuer are set,
// and /images/, /scenarios/, /boot/ when their directories are.
func (s *Server) Register(mux *http.ServeMux) {
	if s.o.Store != nil && s.o.Issuer != nil {
		mux.HandleFunc("POST "+protocol.PathHello, s.hello)
		mux.HandleFunc("POST /api/v1/runs/{run}/events", s.events)
		mux.HandleFunc("PUT /api/v1/runs/{run}/result", s.result)
		mux.HandleFunc("POST /api/v1/runs/{run}/heartbeat", s.heartbeat)
		// Anything else under the API is a clear JSON 404/405, not the dashboard's HTML.
		mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			s.fail(w, r, http.StatusNotFound, "no_route", fmt.Sprintf("no API endpoint %s %s", r.Method, r.URL.Path))
		})
	}
	if s.images != nil {
		mux.Handle("GET /images/{path...}", s.images)
	}
	if s.scenarios != nil {
		mux.Handle("GET /scenarios/{path...}", s.scenarios)
	}
	if s.boot != nil {
		mux.Handle("GET /boot/{path...}", s.boot)
	}
}

// fail answers a refused request with a JSON error and logs why. reason is a short stable
// word for logs and metrics; msg is for the human reading the device console.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, reason, msg string, attrs ...any) {
	if code == StatusClientClosed {
		// Nobody is left to answer: not a refusal, not an error.
		s.log.Info("client went away", append([]any{"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "error", msg}, attrs...)...)
		ClientClosed(w)
		return
	}
	lvl := slog.LevelWarn
	if code >= 500 {
		lvl = slog.LevelError
	}
	args := append([]any{"reason", reason, "code", code, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "error", msg}, attrs...)
	s.log.Log(r.Context(), lvl, "request refused", args...)
	if s.o.Metrics != nil && code < 500 {
		s.o.Metrics.badRequests.WithLabelValues(reason).Inc()
	}
	writeJSON(w, code, protocol.Error{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// decodeError says why a body could not be decoded, for the answer and the log.
type decodeError struct {
	code   int
	reason string
	msg    string
}

// decode reads one JSON value of at most protocol.MaxBodyBytes into v, within the default
// body timeout. Unknown fields are accepted: newer agents may send fields this server does not
// know yet.
func decode(w http.ResponseWriter, r *http.Request, v any) *decodeError {
	return decodeBody(w, r, v, protocol.MaxBodyBytes, DefaultBodyTimeout)
}

// decode is [decode] within the configured body timeout.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) *decodeError {
	return decodeBody(w, r, v, protocol.MaxBodyBytes, s.o.Limits.BodyTimeout)
}

// decodeBody reads one JSON value of at most limit bytes, arriving within timeout, into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, limit int64, timeout time.Duration) *decodeError {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &decodeError{http.StatusUnsupportedMediaType, "content_type", fmt.Sprintf("content type %q: want application/json", ct)}
		}
	}
	if r.ContentLength > limit {
		return &decodeError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body of %d bytes is over the limit of %d", r.ContentLength, limit)}
	}
	// A body must arrive within the timeout (slow senders would otherwise hold a connection
	// forever); the server itself has no ReadTimeout because that would also cut long image
	// downloads and live streams.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(timeout))
	body := &readErr{r: http.MaxBytesReader(w, r.Body, limit)}
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &decodeError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over the limit of %d bytes", limit)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Not the client's JSON but its pace: 408 tells it (and its operator) so. The
			// connection is closed after the answer: the rest of the body would otherwise be
			// waited for before the answer goes out.
			w.Header().Set("Connection", "close")
			return &decodeError{http.StatusRequestTimeout, "slow_body", fmt.Sprintf("request body not received within %s", timeout)}
		}
		if errors.Is(err, io.EOF) {
			return &decodeError{http.StatusBadRequest, "malformed", "empty body: want a JSON object"}
		}
		if errors.Is(body.err, io.ErrUnexpectedEOF) {
			// Less than the declared length arrived: the connection closed under it.
			return &decodeError{StatusClientClosed, "client_gone", "the client closed the connection before its body arrived"}
		}
		return &decodeError{http.StatusBadRequest, "malformed", "malformed JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &decodeError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over the limit of %d bytes", limit)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
			return &decodeError{http.StatusRequestTimeout, "slow_body", fmt.Sprintf("request body not received within %s", timeout)}
		}
		return &decodeError{http.StatusBadRequest, "malformed", "trailing data after the JSON object"}
	}
	// Only now: on an error the deadline also bounds the server's wait for the rest of the
	// body before it answers.
	rc.SetReadDeadline(time.Time{})
	return nil
}

func (s *Server) notify(runID string) {
	if s.o.Notifier != nil {
		s.o.Notifier.RunChanged(runID)
	}
}

// validRunID accepts the ids this server issues and any similar token, so a hostile path
// segment never reaches a log or the database unchecked.
func validRunID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// maxField bounds identity strings so that a garbage inventory cannot bloat the database.
const maxField = 256

// CheckHello validates a hello and returns the boot MAC in canonical form.
func CheckHello(h *protocol.Hello) (string, error) {
	mac, err := store.NormalizeMAC(h.BootMAC)
	if err != nil {
		return "", fmt.Errorf("boot_mac: %w", err)
	}
	for _, f := range []struct{ name, v string }{{"nonce", h.Nonce}, {"agent_version", h.AgentVersion},
		{"inventory.dmi.serial", h.Inventory.DMI.Serial}, {"inventory.dmi.product", h.Inventory.DMI.Product}, {"ip", h.IP}} {
		if len(f.v) > maxField {
			return "", fmt.Errorf("%s: longer than %d bytes", f.name, maxField)
		}
	}
	if h.IP != "" && net.ParseIP(h.IP) == nil {
		return "", fmt.Errorf("ip %q: not an IP address", h.IP)
	}
	for _, t := range h.Timings {
		if t.DurationMS < 0 || t.Phase == "" || len(t.Phase) > maxField {
			return "", fmt.Errorf("timings: phase %q with %d ms", t.Phase, t.DurationMS)
		}
	}
	return mac, nil
}

func (s *Server) hello(w http.ResponseWriter, r *http.Request) {
	var h protocol.Hello
	if de := decodeBody(w, r, &h, int64(s.o.Limits.HelloMaxBody), s.o.Limits.BodyTimeout); de != nil {
		s.fail(w, r, de.code, de.reason, de.msg)
		return
	}
	mac, err := CheckHello(&h)
	if err == nil {
		err = s.o.Limits.CheckHello(&h)
	}
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "invalid", "hello: "+err.Error())
		return
	}
	iss, err := s.o.Issuer.Issue(r.Context(), h, mac)
	if errors.Is(err, jobs.ErrNoRule) {
		// The device is unknown to the rules: tell its console why and let it ask again later
		// (an operator may add a rule meanwhile).
		s.log.Warn("unknown device: no rule matches", "mac", mac, "serial", h.Inventory.DMI.Serial,
			"product", h.Inventory.DMI.Product, "modules", h.Inventory.Modules, "remote", r.RemoteAddr)
		s.count("no_rule")
		ip := h.IP
		if ip == "" {
			ip, _, _ = net.SplitHostPort(r.RemoteAddr)
		}
		s.recordUnmatched(r.Context(), h, mac, ip)
		writeJSON(w, http.StatusOK, protocol.HelloResponse{Message: err.Error(), RetryAfter: int(s.o.RetryAfter / time.Second)})
		return
	}
	if err != nil {
		s.count("error")
		s.log.Error("issue job", "mac", mac, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, protocol.Error{Error: "cannot issue a job: " + err.Error()})
		return
	}
	secret, err := protocol.NewRunSecret()
	if err != nil {
		s.count("error")
		s.log.Error("issue job", "mac", mac, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, protocol.Error{Error: "cannot issue a job: " + err.Error()})
		return
	}
	ip := h.IP
	if ip == "" {
		ip, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	var netboot []protocol.PhaseTiming
	if s.o.Netboot != nil {
		hw, _ := net.ParseMAC(mac) // canonical already
		addr, _ := netip.ParseAddr(ip)
		netboot = s.o.Netboot.Hello(hw, addr, time.Now())
	}
	run := store.NewRun{RunID: iss.Job.RunID, Serial: iss.Job.Device.Serial, MAC: mac,
		Product: h.Inventory.DMI.Product, Rule: iss.Rule, Scenario: iss.Job.Scenario.Name, Image: iss.Job.Image.Name,
		AgentVersion: h.AgentVersion, IP: ip, IssuedAt: iss.Job.IssuedAt, ExpiresAt: iss.Job.ExpiresAt,
		Inventory: h.Inventory, Timings: h.Timings, ServerTimings: netboot, SecretHash: protocol.HashRunSecret(secret)}
	s.placeRun(&run, h, iss.Job.Scenario.Name)
	err = s.o.Store.StartRun(r.Context(), run)
	if err != nil && r.Context().Err() != nil {
		s.log.Info("client went away before its job was recorded", "run", iss.Job.RunID, "mac", mac, "err", err)
		ClientClosed(w)
		return
	}
	if err != nil {
		s.count("error")
		s.log.Error("record run", "run", iss.Job.RunID, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, protocol.Error{Error: "cannot record the run; try again"})
		return
	}
	s.count("job")
	s.log.Info("job issued", "run", iss.Job.RunID, "mac", mac, "serial", iss.Job.Device.Serial, "rule", iss.Rule,
		"scenario", iss.Job.Scenario.Name, "image", iss.Job.Image.Name, "signed", len(iss.Signed.Signature) > 0,
		"netboot", netboot, "station", run.Station, "station_source", run.StationSource)
	s.notify(iss.Job.RunID)
	writeJSON(w, http.StatusOK, protocol.HelloResponse{Job: &iss.Signed, RunSecret: secret, HeartbeatSeconds: s.heartbeatSeconds(h)})
}

func (s *Server) count(outcome string) {
	if s.o.Metrics != nil {
		s.o.Metrics.hellos.WithLabelValues(outcome).Inc()
	}
}

// maxBatch bounds the events of one batch (the body limit already bounds their size).
const maxBatch = 10000

// CheckEvents validates a batch for the run named in the path.
func CheckEvents(runID string, b *protocol.EventBatch) error {
	if b.RunID != "" && b.RunID != runID {
		return fmt.Errorf("batch is for run %q but was posted to run %q", b.RunID, runID)
	}
	if len(b.Events) == 0 {
		return errors.New("no events in the batch")
	}
	if len(b.Events) > maxBatch {
		return fmt.Errorf("%d events in one batch: at most %d", len(b.Events), maxBatch)
	}
	for _, e := range b.Events {
		if e.Seq < 1 {
			return fmt.Errorf("event seq %d: sequence numbers start at 1", e.Seq)
		}
		if e.Kind == "" {
			return fmt.Errorf("event %d: no kind", e.Seq)
		}
	}
	return nil
}

// decodeRun reads the run id from the path and the JSON body into v, answering the request
// itself (and returning false) when either is bad: the device-write routes share it.
func (s *Server) decodeRun(w http.ResponseWriter, r *http.Request, v any) (string, bool) {
	runID := r.PathValue("run")
	if !validRunID(runID) {
		s.fail(w, r, http.StatusBadRequest, "invalid", fmt.Sprintf("run id %q is not valid", runID))
		return "", false
	}
	if de := s.decode(w, r, v); de != nil {
		s.fail(w, r, de.code, de.reason, de.msg, "run", runID)
		return "", false
	}
	return runID, true
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	var b protocol.EventBatch
	runID, ok := s.decodeRun(w, r, &b)
	if !ok {
		return
	}
	if err := CheckEvents(runID, &b); err != nil {
		s.fail(w, r, http.StatusBadRequest, "invalid", err.Error(), "run", runID)
		return
	}
	if !s.authorized(w, r, runID) {
		return
	}
	ack, err := s.o.Store.AddEvents(r.Context(), runID, b.Serial, b.Events)
	if s.storeFailed(w, r, err, runID) {
		return
	}
	if ack.Skipped > 0 {
		s.log.Warn("events lost on the device (its queue overflowed while this server was unreachable)",
			"run", runID, "missing", ack.Skipped, "up_to_seq", ack.Seq)
	}
	if s.o.Metrics != nil {
		s.o.Metrics.events.Add(float64(len(b.Events)))
	}
	s.notify(runID)
	writeJSON(w, http.StatusOK, protocol.EventAck{Seq: ack.Seq})
}

// authorized checks that a device write carries its run's secret (Authorization: Bearer) and
// that the run's job has not expired; otherwise it answers 401 or 403 and the caller stores
// nothing. It runs after the body was decoded and validated, so a malformed request is still
// told what is wrong with it, but before anything touches the run.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, runID string) bool {
	secret, ok := protocol.ParseBearer(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="flashline run"`)
		s.fail(w, r, http.StatusUnauthorized, "unauthenticated", "no run secret: send the run_secret of this run's hello answer as Authorization: Bearer", "run", runID)
		return false
	}
	err := s.o.Store.CheckRunSecret(r.Context(), runID, secret, s.o.Now())
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrUnauthorized):
		w.Header().Set("WWW-Authenticate", `Bearer realm="flashline run", error="invalid_token"`)
		s.fail(w, r, http.StatusUnauthorized, "unauthenticated", fmt.Sprintf("wrong run secret for run %q", runID), "run", runID)
	case errors.Is(err, store.ErrExpired):
		s.fail(w, r, http.StatusForbidden, "expired", err.Error(), "run", runID)
	default:
		s.storeFailed(w, r, err, runID)
	}
	return false
}

// storeFailed answers a store error: unknown runs and other devices' runs are the client's
// fault (4xx, the agent stops retrying); anything else is ours (503, the agent retries).
func (s *Server) storeFailed(w http.ResponseWriter, r *http.Request, err error, runID string) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "unknown_run", fmt.Sprintf("unknown run %q: this server never issued it", runID), "run", runID)
	case errors.Is(err, store.ErrMismatch):
		s.fail(w, r, http.StatusConflict, "wrong_device", err.Error(), "run", runID)
	case r.Context().Err() != nil:
		s.log.Info("client went away", "run", runID, "path", r.URL.Path, "err", err)
		ClientClosed(w)
	default:
		s.log.Error("store", "run", runID, "path", r.URL.Path, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, protocol.Error{Error: "could not store; try again"})
	}
	return true
}

// CheckResult validates a result for the run named in the path.
func CheckResult(runID string, res *protocol.Result) error {
	if res.RunID != runID {
		return fmt.Errorf("result is for run %q but was put to run %q", res.RunID, runID)
	}
	switch res.Status {
	case protocol.StatusPass, protocol.StatusFail, protocol.StatusError:
	default:
		return fmt.Errorf("status %q: want pass, fail or error", res.Status)
	}
	if res.MAC != "" {
		if _, err := store.NormalizeMAC(res.MAC); err != nil {
			return err
		}
	}
	for _, st := range res.Steps {
		if st.Name == "" {
			return errors.New("a step has no name")
		}
		if st.DurationMS < 0 {
			return fmt.Errorf("step %q: negative duration", st.Name)
		}
	}
	for _, t := range res.Timings {
		if t.DurationMS < 0 || t.Phase == "" {
			return fmt.Errorf("timings: phase %q with %d ms", t.Phase, t.DurationMS)
		}
	}
	return nil
}

func (s *Server) result(w http.ResponseWriter, r *http.Request) {
	var res protocol.Result
	runID, ok := s.decodeRun(w, r, &res)
	if !ok {
		return
	}
	if err := CheckResult(runID, &res); err != nil {
		s.fail(w, r, http.StatusBadRequest, "invalid", err.Error(), "run", runID)
		return
	}
	if !s.authorized(w, r, runID) {
		return
	}
	// The request's context is not used: once the result is being stored, a client that hangs
	// up must not turn a commit into a rollback half way; it will retry and see a duplicate.
	ctx := context.WithoutCancel(r.Context())
	dup, err := s.o.Store.PutResult(ctx, res)
	if s.storeFailed(w, r, err, runID) {
		return
	}
	if s.o.Metrics != nil {
		s.o.Metrics.results.WithLabelValues(string(res.Status), fmt.Sprint(dup)).Inc()
		if !dup {
			s.observeResult(ctx, res)
		}
	}
	if !dup {
		s.log.Info("result stored", "run", runID, "serial", res.Serial, "status", res.Status, "failed_step", res.FailedStep)
		s.notify(runID)
	}
	writeJSON(w, http.StatusOK, protocol.ResultAck{Stored: true, Duplicate: dup})
}
