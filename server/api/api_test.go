package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/store"
)

type env struct {
	srv     *httptest.Server
	store   *store.Store
	pub     ed25519.PublicKey
	client  *lineclient.Client
	image   []byte
	logs    *syncBuffer
	notes   *notes
	netboot *fakeNetboot
	// skew moves the API's clock ahead (job expiry tests).
	skew *atomic.Int64
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type notes struct {
	mu  sync.Mutex
	ids []string
}

func (n *notes) RunChanged(id string) { n.mu.Lock(); n.ids = append(n.ids, id); n.mu.Unlock() }

func newEnv(t testing.TB, with ...func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	imgDir, scenDir := filepath.Join(dir, "images"), filepath.Join(dir, "scenarios")
	os.MkdirAll(filepath.Join(imgDir, "sub"), 0o755)
	os.MkdirAll(scenDir, 0o755)
	image := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	os.WriteFile(filepath.Join(imgDir, "os.img"), image, 0o644)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o644)
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(imgDir, "escape.img"))
	os.WriteFile(filepath.Join(scenDir, "box.yaml"), []byte("name: box\nsteps: []\n"), 0o644)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "data", "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	imgs, err := jobs.LoadImages(ctx, []config.Image{{Name: "os", File: "os.img"}}, jobs.ImageOptions{Dir: imgDir, Compute: true})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	is, err := jobs.New(jobs.Options{Images: imgs, ScenariosDir: scenDir, Key: priv, Rules: []config.Rule{
		{Name: "box", Match: config.Match{Product: "GM-Box*"}, Scenario: "box.yaml", Image: "os", After: "reboot"}}})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	n := &notes{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	nb := &fakeNetboot{}
	skew := &atomic.Int64{}
	o := Options{Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }, Store: st, Issuer: is, ImagesDir: imgDir, ScenariosDir: scenDir, Metrics: m, Notifier: n, Netboot: nb,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), RetryAfter: 7 * time.Second}
	for _, f := range with {
		f(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(m.Instrument(mux))
	t.Cleanup(srv.Close)
	c, err := lineclient.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, store: st, pub: pub, client: c, image: image, logs: logs, notes: n, netboot: nb, skew: skew}
}

func hello(mac string) protocol.Hello {
	return protocol.Hello{AgentVersion: "test", BootMAC: mac, Nonce: "nonce-" + mac,
		Inventory: protocol.Inventory{DMI: protocol.DMI{Product: "GM-Box 3", Serial: "SER-" + mac[len(mac)-2:]}},
		Timings:   []protocol.PhaseTiming{{Phase: "dhcp", DurationMS: 1100}}}
}

func TestProtocolRoundTrip(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	resp, err := e.client.Hello(ctx, hello("52:54:00:00:00:01"))
	if err != nil {
		t.Fatal(err)
	}
	job, err := protocol.OpenJob(*resp.Job, e.pub)
	if err != nil {
		t.Fatalf("job does not verify: %v", err)
	}
	sum := sha256.Sum256(e.image)
	if job.Nonce != "nonce-52:54:00:00:00:01" || job.Device.Serial != "SER-01" || job.Device.MAC != "52:54:00:00:00:01" ||
		job.Image.SHA256 != hex.EncodeToString(sum[:]) || job.Image.Size != int64(len(e.image)) {
		t.Fatalf("job %+v", job)
	}

	// The scenario and image URLs in the job work through the agent's client.
	scen, err := e.client.Fetch(ctx, job.Scenario.URL, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(scen); hex.EncodeToString(s[:]) != job.Scenario.SHA256 {
		t.Fatal("scenario hash differs from the job's")
	}

	ev := []protocol.Event{
		{Seq: 1, Time: time.Now(), Kind: protocol.EventPhase, Phase: "scenario", Status: protocol.StatusRunning},
		{Seq: 2, Time: time.Now(), Kind: protocol.EventStep, Step: "Wi-Fi", Status: protocol.StatusRunning},
	}
	for i := 0; i < 2; i++ { // a repeat is acknowledged the same
		ack, err := e.client.PostEvents(ctx, protocol.EventBatch{RunID: job.RunID, Serial: job.Device.Serial, Events: ev, Secret: resp.RunSecret})
		if err != nil || ack != 2 {
			t.Fatalf("post events: ack %d err %v", ack, err)
		}
	}
	ack, err := e.client.PostEvents(ctx, protocol.EventBatch{RunID: job.RunID, Secret: resp.RunSecret, Events: []protocol.Event{
		{Seq: 3, Kind: protocol.EventProgress, Phase: "flash", Done: 512, Total: 1024}}})
	if err != nil || ack != 3 {
		t.Fatalf("progress: %d %v", ack, err)
	}
	r, _ := e.store.Run(ctx, job.RunID)
	if r.Status != "running" || r.Step != "Wi-Fi" || r.Phase != "flash" || r.ProgressDone != 512 {
		t.Fatalf("live state %+v", r)
	}

	v := -50.0
	res := protocol.Result{RunID: job.RunID, Serial: job.Device.Serial, MAC: job.Device.MAC, Status: protocol.StatusPass,
		Steps:   []protocol.StepResult{{Name: "Wi-Fi", Check: "wifi.scan", Status: protocol.StatusPass, Measurements: []protocol.Measurement{{Name: "signal_dbm", Value: &v}}}},
		Timings: []protocol.PhaseTiming{{Phase: "flash", DurationMS: 4000}}, Finished: time.Now(), Secret: resp.RunSecret}
	a1, err := e.client.PutResult(ctx, res)
	if err != nil || !a1.Stored || a1.Duplicate {
		t.Fatalf("first put: %+v %v", a1, err)
	}
	a2, err := e.client.PutResultRetrying(ctx, res, nil)
	if err != nil || !a2.Stored || !a2.Duplicate {
		t.Fatalf("repeat put: %+v %v", a2, err)
	}
	if lb, _ := e.store.LocalBoot(ctx, job.Device.MAC); !lb {
		t.Fatal("passed device not switched to local boot")
	}
	c, _ := e.store.Count(ctx)
	if c.Results != 1 || c.Steps != 1 || c.Measurements != 1 || c.Events != 3 || c.Timings != 2 {
		t.Fatalf("counts %+v", c)
	}
	if len(e.notes.ids) < 4 {
		t.Fatalf("notifier told %v", e.notes.ids)
	}

	// A device no rule matches gets a message and a retry time, not a job.
	h := hello("52:54:00:00:00:02")
	h.Inventory.DMI.Product = "Toaster"
	resp, err = e.client.Hello(ctx, h)
	if err != nil || resp.Job != nil || resp.RetryAfter != 7 || !strings.Contains(resp.Message, "Toaster") {
		t.Fatalf("no-rule hello: %+v %v", resp, err)
	}
	if !strings.Contains(e.logs.String(), "unknown device") {
		t.Fatal("no log line for the unknown device")
	}

	// Metrics count what happened.
	mresp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`flashline_hello_total{outcome="job"} 1`, `flashline_hello_total{outcome="no_rule"} 1`,
		`flashline_results_total{duplicate="true",status="pass"} 1`, `flashline_http_requests_total{code="200",method="PUT",route="/api/v1/runs/{run}/result"} 2`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	resp, err := e.client.Hello(ctx, hello("52:54:00:00:00:01"))
	if err != nil {
		t.Fatal(err)
	}
	job, _ := protocol.OpenJob(*resp.Job, e.pub)
	runPath := "/api/v1/runs/" + job.RunID
	huge := `{"boot_mac":"52:54:00:00:00:01","nonce":"` + strings.Repeat("x", protocol.MaxBodyBytes) + `"}`
	goodResult := fmt.Sprintf(`{"run_id":%q,"serial":"SER-01","status":"pass","steps":[]}`, job.RunID)
	tests := []struct {
		name, method, path, ctype, body string
		want                            int
		reason                          string
	}{
		{"malformed hello", "POST", "/api/v1/hello", "application/json", `{"boot_mac":`, 400, "malformed"},
		{"empty hello", "POST", "/api/v1/hello", "", ``, 400, "malformed"},
		{"trailing data", "POST", "/api/v1/hello", "", `{"boot_mac":"52:54:00:00:00:01"} {}`, 400, "malformed"},
		{"wrong type", "POST", "/api/v1/hello", "", `{"boot_mac":12}`, 400, "malformed"},
		{"bad mac", "POST", "/api/v1/hello", "", `{"boot_mac":"nope","nonce":"n"}`, 400, "invalid"},
		{"not json", "POST", "/api/v1/hello", "text/plain", `{}`, 415, "content_type"},
		{"oversized", "POST", "/api/v1/hello", "", huge, 413, "too_large"},
		{"events unknown run", "POST", "/api/v1/runs/20260101T000000Z-0000000000000000/events", "", `{"events":[{"seq":1,"kind":"log"}]}`, 404, "unknown_run"},
		{"events bad run id", "POST", "/api/v1/runs/a%20b/events", "", `{"events":[{"seq":1,"kind":"log"}]}`, 400, "invalid"},
		{"events seq 0", "POST", runPath + "/events", "", `{"events":[{"seq":0,"kind":"log"}]}`, 400, "invalid"},
		{"events empty", "POST", runPath + "/events", "", `{"events":[]}`, 400, "invalid"},
		{"events other serial", "POST", runPath + "/events", "", `{"serial":"OTHER","events":[{"seq":1,"kind":"log"}]}`, 409, "wrong_device"},
		{"events run mismatch", "POST", runPath + "/events", "", `{"run_id":"other","events":[{"seq":1,"kind":"log"}]}`, 400, "invalid"},
		{"result unknown run", "PUT", "/api/v1/runs/nope/result", "", `{"run_id":"nope","status":"pass"}`, 404, "unknown_run"},
		{"result path mismatch", "PUT", runPath + "/result", "", `{"run_id":"nope","status":"pass"}`, 400, "invalid"},
		{"result bad status", "PUT", runPath + "/result", "", fmt.Sprintf(`{"run_id":%q,"status":"maybe"}`, job.RunID), 400, "invalid"},
		{"result other serial", "PUT", runPath + "/result", "", fmt.Sprintf(`{"run_id":%q,"serial":"X","status":"pass"}`, job.RunID), 409, "wrong_device"},
		{"result wrong method", "POST", runPath + "/result", "", goodResult, 404, "no_route"},
		{"no such api", "GET", "/api/v1/nothing", "", ``, 404, "no_route"},
		{"image traversal encoded", "GET", "/images/..%2f..%2fsecret", "", ``, 400, "bad_path"},
		{"image hidden", "GET", "/images/.hidden", "", ``, 400, "bad_path"},
		{"image backslash", "GET", "/images/sub%5c..%5csecret", "", ``, 400, "bad_path"},
		{"image symlink out", "GET", "/images/escape.img", "", ``, 400, "bad_path"},
		{"image directory", "GET", "/images/sub", "", ``, 404, "not_found"},
		{"image missing", "GET", "/images/none.img", "", ``, 404, "not_found"},
		{"scenario traversal", "GET", "/scenarios/a/%2e%2e/%2e%2e/secret", "", ``, 400, "bad_path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.logs.String())
			req, _ := http.NewRequest(tt.method, e.srv.URL+tt.path, strings.NewReader(tt.body))
			// The genuine run's secret: these requests are refused for what they say.
			req.Header.Set("Authorization", "Bearer "+resp.RunSecret)
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
			if tt.reason == "" {
				return
			}
			var pe protocol.Error
			if err := json.Unmarshal(b, &pe); err != nil || pe.Error == "" {
				t.Fatalf("body is not a protocol.Error: %s", b)
			}
			if !strings.Contains(e.logs.String()[before:], "reason="+tt.reason) {
				t.Fatalf("no log line with reason=%s:\n%s", tt.reason, e.logs.String()[before:])
			}
		})
	}
	// Nothing of the bad requests reached the store; the good run is intact and still usable.
	c, _ := e.store.Count(ctx)
	if c.Runs != 1 || c.Events != 0 || c.Results != 0 {
		t.Fatalf("bad input changed the store: %+v", c)
	}
	var se *lineclient.StatusError
	_, err = e.client.PutResult(ctx, protocol.Result{RunID: "20990101T000000Z-00", Status: protocol.StatusPass, Secret: resp.RunSecret})
	if !errors.As(err, &se) || se.Code != 404 || se.Temporary() {
		t.Fatalf("agent client sees %v", err)
	}
}

func TestImageRangeAndETag(t *testing.T) {
	e := newEnv(t)
	get := func(h map[string]string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/images/os.img", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	resp, b := get(nil)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || !bytes.Equal(b, e.image) || etag == "" || resp.Header.Get("Last-Modified") == "" ||
		resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("full GET: %d %v", resp.StatusCode, resp.Header)
	}
	resp, b = get(map[string]string{"Range": "bytes=1000-1999"})
	if resp.StatusCode != 206 || !bytes.Equal(b, e.image[1000:2000]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(e.image)) {
		t.Fatalf("range: %d %v", resp.StatusCode, resp.Header)
	}
	resp, b = get(map[string]string{"Range": "bytes=1048000-", "If-Range": etag})
	if resp.StatusCode != 206 || !bytes.Equal(b, e.image[1048000:]) {
		t.Fatalf("resume with matching If-Range: %d", resp.StatusCode)
	}
	resp, b = get(map[string]string{"Range": "bytes=1048000-", "If-Range": `"other"`})
	if resp.StatusCode != 200 || len(b) != len(e.image) {
		t.Fatalf("resume with a stale If-Range must restart: %d %d", resp.StatusCode, len(b))
	}
	resp, _ = get(map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 304 {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	resp, _ = get(map[string]string{"Range": "bytes=9999999-"})
	if resp.StatusCode != 416 {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}
}

// decodeAll runs a body through the same decoding and validation the handlers use.
func decodeAll(body []byte) {
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	w := httptest.NewRecorder()
	var h protocol.Hello
	if decode(w, r, &h) == nil {
		CheckHello(&h)
	}
	r = httptest.NewRequest("POST", "/", bytes.NewReader(body))
	var b protocol.EventBatch
	if decode(w, r, &b) == nil {
		CheckEvents("r1", &b)
	}
	r = httptest.NewRequest("POST", "/", bytes.NewReader(body))
	var res protocol.Result
	if decode(w, r, &res) == nil {
		CheckResult("r1", &res)
	}
}

func FuzzDecoders(f *testing.F) {
	f.Add([]byte(`{"boot_mac":"52:54:00:00:00:01","nonce":"n","inventory":{"dmi":{"serial":"S"}},"timings":[{"phase":"dhcp","duration_ms":5}]}`))
	f.Add([]byte(`{"run_id":"r1","events":[{"seq":1,"kind":"step","measurements":[{"name":"x","value":1e308}]}]}`))
	f.Add([]byte(`{"run_id":"r1","status":"pass","mac":"aa-bb-cc-dd-ee-ff","steps":[{"name":"a","duration_ms":-1}]}`))
	f.Add([]byte(`[1,2,{"a":null}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		decodeAll(body)
		var h protocol.Hello
		if json.Unmarshal(body, &h) == nil {
			if mac, err := CheckHello(&h); err == nil {
				if _, err := store.NormalizeMAC(mac); err != nil {
					t.Fatalf("accepted MAC %q does not normalize", mac)
				}
			}
		}
	})
}

// Handlers against a store on the real database, with fuzzed bodies: nothing panics, every
// answer is a 2xx or a 4xx with a JSON error.
func FuzzHandlers(f *testing.F) {
	f.Add("POST", "/api/v1/hello", []byte(`{"boot_mac":"52:54:00:00:00:01","nonce":"n","inventory":{"dmi":{"product":"GM-Box"}}}`))
	f.Add("POST", "/api/v1/runs/x/events", []byte(`{"events":[{"seq":1,"kind":"log"}]}`))
	f.Add("PUT", "/api/v1/runs/x/result", []byte(`{"run_id":"x","status":"fail"}`))
	f.Add("GET", "/images/os.img", []byte{})
	f.Add("GET", "/scenarios/../box.yaml", []byte{})
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		req, err := http.NewRequest(method, e.srv.URL+"/"+strings.TrimPrefix(path, "/"), bytes.NewReader(body))
		if err != nil {
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	})
}

// TestDeviceWritesNeedTheRunSecret is the attack of issue 13: anyone on the line network
// could read a run id from the dashboard and PUT {"status":"pass"} for it (the device then
// boots its disk untested, and its genuine FAIL is dropped as a duplicate), or post events
// with an empty serial. Without the run's secret every such write is now 401, nothing is
// stored and the device's state is unchanged; the genuine agent's writes still work.
func TestDeviceWritesNeedTheRunSecret(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const mac = "52:54:00:00:00:01"
	resp, err := e.client.Hello(ctx, hello(mac))
	if err != nil || resp.Job == nil {
		t.Fatal(err)
	}
	if len(resp.RunSecret) != 43 || strings.Contains(string(resp.Job.Job), resp.RunSecret) {
		t.Fatalf("run secret %q missing, or inside the signed job", resp.RunSecret)
	}
	job, _ := protocol.OpenJob(*resp.Job, e.pub)
	other, err := e.client.Hello(ctx, hello("52:54:00:00:00:02"))
	if err != nil || other.Job == nil {
		t.Fatal(err)
	}
	runPath := "/api/v1/runs/" + job.RunID
	forgedPass := fmt.Sprintf(`{"run_id":%q,"serial":"SER-01","mac":%q,"status":"pass","steps":[]}`, job.RunID, mac)
	emptySerialEvent := `{"run_id":"","serial":"","events":[{"seq":1,"kind":"step","step":"frozen by an attacker","status":"running"}]}`
	for _, tt := range []struct {
		name, method, path, auth, body string
	}{
		{"forged pass, no credential", "PUT", runPath + "/result", "", forgedPass},
		{"forged pass, wrong secret", "PUT", runPath + "/result", "Bearer " + strings.Repeat("A", 43), forgedPass},
		{"forged pass, another run's secret", "PUT", runPath + "/result", "Bearer " + other.RunSecret, forgedPass},
		{"forged pass, the secret's hash", "PUT", runPath + "/result", "Bearer " + protocol.HashRunSecret(resp.RunSecret), forgedPass},
		{"forged pass, other scheme", "PUT", runPath + "/result", "Basic " + resp.RunSecret, forgedPass},
		{"forged pass, secret in the body", "PUT", runPath + "/result", "", strings.Replace(forgedPass, `"steps"`, `"secret":"`+resp.RunSecret+`","run_secret":"`+resp.RunSecret+`","steps"`, 1)},
		{"events with an empty serial, no credential", "POST", runPath + "/events", "", emptySerialEvent},
		{"events with an empty serial, wrong secret", "POST", runPath + "/events", "Bearer " + other.RunSecret, emptySerialEvent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("status %d (%s), want 401 with WWW-Authenticate", res.StatusCode, b)
			}
			if lb, _ := e.store.LocalBoot(ctx, mac); lb {
				t.Fatal("a forged result sent the device to localboot")
			}
			r, _ := e.store.Run(ctx, job.RunID)
			if r.Status != "issued" || r.Step != "" || r.HasResult {
				t.Fatalf("an unauthenticated write changed the run: %+v", r)
			}
			if c, _ := e.store.Count(ctx); c.Results != 0 || c.Events != 0 {
				t.Fatalf("an unauthenticated write was stored: %+v", c)
			}
		})
	}

	// The genuine FAIL is stored as the result, not answered "duplicate".
	ack, err := e.client.PutResult(ctx, protocol.Result{RunID: job.RunID, Serial: "SER-01", MAC: mac, Status: protocol.StatusFail,
		FailedStep: "Wi-Fi", Reason: "no AP", Secret: resp.RunSecret})
	if err != nil || !ack.Stored || ack.Duplicate {
		t.Fatalf("genuine fail: %+v %v", ack, err)
	}
	if r, _ := e.store.Run(ctx, job.RunID); r.Status != "fail" {
		t.Fatalf("stored status %q, want the genuine fail", r.Status)
	}
	// Neither the secret nor its hash reaches an export.
	var exp bytes.Buffer
	if err := e.store.ExportJSON(ctx, &exp, "SER-01"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(exp.String(), resp.RunSecret) || strings.Contains(exp.String(), protocol.HashRunSecret(resp.RunSecret)) {
		t.Fatal("the run secret is in the export")
	}
	if strings.Contains(e.logs.String(), resp.RunSecret) {
		t.Fatal("the run secret is in the log")
	}
}

// TestResultAfterExpiryRefused: a result (or events) arriving after the job expired is
// refused, even with the right secret: a device that reports hours later did not run the job
// the operator signed for that time.
func TestResultAfterExpiryRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const mac = "52:54:00:00:00:03"
	resp, err := e.client.Hello(ctx, hello(mac))
	if err != nil || resp.Job == nil {
		t.Fatal(err)
	}
	job, _ := protocol.OpenJob(*resp.Job, e.pub)
	e.skew.Store(int64(config.DefaultTTL + time.Minute))
	var se *lineclient.StatusError
	_, err = e.client.PutResultRetrying(ctx, protocol.Result{RunID: job.RunID, Serial: job.Device.Serial, MAC: mac,
		Status: protocol.StatusPass, Secret: resp.RunSecret}, nil)
	if !errors.As(err, &se) || se.Code != http.StatusForbidden || !strings.Contains(se.Message, "expired") {
		t.Fatalf("late result: %v, want 403 expired (and no retrying)", err)
	}
	_, err = e.client.PostEvents(ctx, protocol.EventBatch{RunID: job.RunID, Secret: resp.RunSecret,
		Events: []protocol.Event{{Seq: 1, Kind: protocol.EventLog, Message: "late"}}})
	if !errors.As(err, &se) || se.Code != http.StatusForbidden {
		t.Fatalf("late events: %v, want 403", err)
	}
	if lb, _ := e.store.LocalBoot(ctx, mac); lb {
		t.Fatal("a result after expiry sent the device to localboot")
	}
	if c, _ := e.store.Count(ctx); c.Results != 0 || c.Events != 0 {
		t.Fatalf("late writes stored: %+v", c)
	}
}
