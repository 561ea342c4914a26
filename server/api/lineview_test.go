package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/station"
)

// The hello places the device at its station (here by the LLDP it heard), stores the
// scenario's step count, asks a heartbeat-capable agent for heartbeats, and the heartbeats
// move the device's SILENT deadline; a device no rule matches is recorded with why.
func TestLineViewHello(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		os.WriteFile(filepath.Join(o.ScenariosDir, "box.yaml"), []byte(`name: box
steps:
  - name: eMMC
    disk.present: {transport: mmc}
  - name: Power button
    prompt: Press and release the POWER button
    button.press: {key: KEY_POWER}
`), 0o644)
		o.LineView = LineView{
			Stations: &station.Resolver{Map: station.NewMap([]config.Station{
				{Name: "bench-3", LLDPPort: "Gi1/0/3", LLDPChassis: "line1-sw"},
				{Name: "bench-9", MACs: []string{"52:54:00:00:00:09"}}})},
			Plans:             jobs.NewPlans(o.ScenariosDir),
			HeartbeatInterval: 15 * time.Second,
		}
	})
	ctx := context.Background()
	h := hello("52:54:00:00:00:03")
	h.Heartbeat = true
	h.LLDP = &protocol.LLDPNeighbor{ChassisID: "00:1b:21:aa:bb:cc", PortID: "Gi1/0/3", SystemName: "line1-sw"}
	resp, err := e.client.Hello(ctx, h)
	if err != nil || resp.Job == nil {
		t.Fatalf("hello: %v %+v", err, resp)
	}
	if resp.HeartbeatSeconds != 15 {
		t.Errorf("heartbeat_seconds %d, want 15", resp.HeartbeatSeconds)
	}
	job, _ := protocol.OpenJob(*resp.Job, e.pub)
	run, err := e.store.Run(ctx, job.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Station != "bench-3" || run.StationSource != station.SourceLLDP || run.StepsTotal != 2 || !run.Heartbeat {
		t.Fatalf("run line view %+v", run.LineView)
	}

	// An old agent (no heartbeat field) is not asked for heartbeats; the MAC map places it.
	old := hello("52:54:00:00:00:09")
	resp9, err := e.client.Hello(ctx, old)
	if err != nil || resp9.HeartbeatSeconds != 0 {
		t.Fatalf("old agent: %v heartbeat_seconds %d", err, resp9.HeartbeatSeconds)
	}
	job9, _ := protocol.OpenJob(*resp9.Job, e.pub)
	if r9, _ := e.store.Run(ctx, job9.RunID); r9.Station != "bench-9" || r9.StationSource != station.SourceConfig || r9.Heartbeat {
		t.Errorf("old agent's run %+v", r9.LineView)
	}

	// Heartbeats: authenticated like events, and they move heard_at.
	if err := e.client.Heartbeat(ctx, protocol.Heartbeat{RunID: job.RunID, Serial: job.Device.Serial}); err == nil || !strings.Contains(err.Error(), "run secret") {
		t.Errorf("heartbeat without the secret: %v", err)
	}
	e.skew.Store(int64(30 * time.Second))
	if err := e.client.Heartbeat(ctx, protocol.Heartbeat{RunID: job.RunID, Serial: job.Device.Serial, Secret: resp.RunSecret}); err != nil {
		t.Fatal(err)
	}
	after, _ := e.store.Run(ctx, job.RunID)
	if d := after.HeardAt.Sub(run.HeardAt); d < 29*time.Second {
		t.Errorf("heartbeat moved heard_at by %v, want ~30s", d)
	}

	// No rule for this one: recorded with what it reported and why.
	other := hello("52:54:00:00:00:77")
	other.Inventory.DMI.Product = "Unknown Box"
	other.Inventory.Modules = []string{"wifi"}
	if r, err := e.client.Hello(ctx, other); err != nil || r.Job != nil {
		t.Fatalf("unmatched hello: %v %+v", err, r)
	}
	list, err := e.store.ListUnmatched(ctx, time.Now().Add(-time.Hour), 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("unmatched: %v %+v", err, list)
	}
	if u := list[0]; u.MAC != "52:54:00:00:00:77" || u.Product != "Unknown Box" || u.Reported.Modules[0] != "wifi" ||
		!strings.Contains(u.Reason, `rule "box": product "Unknown Box" does not match "GM-Box*"`) {
		t.Errorf("unmatched device %+v", u)
	}

	// A failed run: duration, failed step and flash throughput in /metrics, routes without
	// their method.
	if _, err := e.client.PutResult(ctx, protocol.Result{RunID: job.RunID, Serial: job.Device.Serial, Status: protocol.StatusFail,
		FailedStep: "Power button", Reason: "no key press", Secret: resp.RunSecret}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.PutResult(ctx, protocol.Result{RunID: job9.RunID, Serial: job9.Device.Serial, Status: protocol.StatusPass,
		Flash: &protocol.FlashResult{Target: "/dev/vda", Bytes: 512 << 20, DurationMS: 4000}, Secret: resp9.RunSecret}); err != nil {
		t.Fatal(err)
	}
	mres, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	for _, want := range []string{`flashline_step_failures_total{step="Power button"} 1`, `flashline_run_duration_seconds_count{status="fail"} 1`,
		`flashline_flash_throughput_bytes_per_second_count 1`, `flashline_flash_bytes_total 5.36870912e+08`, `flashline_heartbeats_total 1`,
		`flashline_http_requests_total{code="204",method="POST",route="/api/v1/runs/{run}/heartbeat"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(b), `route="POST `) {
		t.Error("a route label still carries its method")
	}
}

// A step label per invented name would grow /metrics forever: beyond 64 names, "other".
func TestStepLabelBounded(t *testing.T) {
	m := &lineMetrics{steps: map[string]bool{}}
	for i := range 100 {
		m.stepLabel(strings.Repeat("x", i+1))
	}
	if got := m.stepLabel("new step"); got != "other" {
		t.Errorf("label %q after 100 names, want other", got)
	}
	if got := m.stepLabel("x"); got != "x" {
		t.Errorf("a known name became %q", got)
	}
}

// A client that hangs up before the answer is counted as 499, not as a server error.
func TestAbandonedRequestIsNot5xx(t *testing.T) {
	e := newEnv(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	// A hello whose body never comes: the handler waits for it, the client goes away.
	io.WriteString(conn, "POST /api/v1/hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	time.Sleep(200 * time.Millisecond)
	conn.Close()
	var b []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		res, err := http.Get(e.srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(b), `route="/api/v1/hello"`) {
			break
		}
	}
	if strings.Contains(string(b), `code="5`) {
		t.Errorf("an abandoned request was counted as a server error:\n%s", grep(string(b), "flashline_http_requests_total"))
	}
	if !strings.Contains(string(b), `flashline_http_requests_total{code="499",method="POST",route="/api/v1/hello"} 1`) {
		t.Errorf("abandoned hello not counted as 499:\n%s", grep(string(b), "flashline_http_requests_total"))
	}
	if strings.Contains(string(b), `flashline_bad_requests_total{reason="client_gone"}`) {
		t.Error("an abandoned request was counted as a bad request")
	}
	if logs := e.logs.String(); strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "client went away") {
		t.Errorf("an abandoned request was logged as an error:\n%s", e.logs.String())
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
