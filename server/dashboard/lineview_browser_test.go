package dashboard_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/api"
	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/dashboard"
	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/station"
	"github.com/flashline/flashline/server/store"
)

// call sends one DevTools command and returns its result.
func (b *browser) call(t *testing.T, method string, params map[string]any) json.RawMessage {
	t.Helper()
	b.id++
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": b.id, "method": method, "params": params}); err != nil {
		t.Fatal(err)
	}
	b.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{ Message string }
		}
		if err := websocket.JSON.Receive(b.ws, &resp); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if resp.ID == b.id {
			if resp.Error != nil {
				t.Fatalf("%s: %s", method, resp.Error.Message)
			}
			return resp.Result
		}
	}
}

// screenshot sets the viewport's width and writes a PNG of the whole page to out/.
func (b *browser) screenshot(t *testing.T, width int, name string) {
	t.Helper()
	b.call(t, "Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": false})
	time.Sleep(300 * time.Millisecond) // layout
	var shot struct{ Data string }
	json.Unmarshal(b.call(t, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}), &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot %s: %v (%d bytes)", name, err, len(png))
	}
	dir := filepath.Join("..", "..", "out", "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d px wide): %s", name, width, filepath.Join(dir, name))
}

// lineScenario has three steps, the second with an operator prompt.
const lineScenario = `name: box
steps:
  - name: Wi-Fi sees the line AP
    wifi.scan: {ssid: LINE-TEST, min_signal_dbm: -65}
  - name: Power button
    prompt: Press and release the POWER button
    button.press: {key: KEY_POWER}
  - name: eMMC
    disk.present: {transport: mmc}
`

// newStationLine is a line whose stations are known by MAC and serial, with the scenario
// above and the dashboard's line view.
func newStationLine(t *testing.T) *line {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "img"), 0o755)
	os.MkdirAll(filepath.Join(dir, "scen"), 0o755)
	os.WriteFile(filepath.Join(dir, "img", "os.img"), make([]byte, 4096), 0o644)
	os.WriteFile(filepath.Join(dir, "scen", "box.yaml"), []byte(lineScenario), 0o644)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	imgs, err := jobs.LoadImages(ctx, []config.Image{{Name: "os", File: "os.img"}}, jobs.ImageOptions{Dir: filepath.Join(dir, "img"), Compute: true})
	if err != nil {
		t.Fatal(err)
	}
	is, err := jobs.New(jobs.Options{Images: imgs, ScenariosDir: filepath.Join(dir, "scen"),
		Rules: []config.Rule{{Name: "gm-box", Match: config.Match{Product: "GM-Box*"}, Scenario: "box.yaml", Image: "os", After: "reboot"}}})
	if err != nil {
		t.Fatal(err)
	}
	var stations []config.Station
	var names []string
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("bench-%d", i)
		stations = append(stations, config.Station{Name: name, MACs: []string{fmt.Sprintf("52:54:00:00:01:%02x", i)}})
		names = append(names, name)
	}
	plans := jobs.NewPlans(filepath.Join(dir, "scen"))
	d := dashboard.New(dashboard.Options{Store: st, LineView: dashboard.LineView{HeartbeatTimeout: time.Minute, Stations: names,
		Shifts: []time.Duration{6 * time.Hour, 14 * time.Hour, 22 * time.Hour}, Plans: plans}})
	dctx, cancel := context.WithCancel(ctx)
	go d.Run(dctx)
	a, err := api.New(api.Options{Store: st, Issuer: is, Notifier: d, LineView: api.LineView{
		Stations: &station.Resolver{Map: station.NewMap(stations)}, Plans: plans, HeartbeatInterval: 15 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Register(mux)
	d.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { cancel(); srv.Close() })
	c, _ := lineclient.New(srv.URL, nil)
	return &line{srv: srv, dash: d, client: c, store: st, secrets: map[string]string{}}
}

func (l *line) stationJob(t *testing.T, bench int, serial, product string) (protocol.Job, bool) {
	t.Helper()
	resp, err := l.client.Hello(context.Background(), protocol.Hello{BootMAC: fmt.Sprintf("52:54:00:00:01:%02x", bench), Nonce: "n",
		Heartbeat: true, Inventory: protocol.Inventory{DMI: protocol.DMI{Serial: serial, Product: product}, Modules: []string{"wifi"}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Job == nil {
		return protocol.Job{}, false
	}
	job, err := protocol.OpenJob(*resp.Job, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.secrets[job.RunID] = resp.RunSecret
	l.mu.Unlock()
	return job, true
}

func (l *line) result(t *testing.T, job protocol.Job, res protocol.Result) {
	t.Helper()
	res.RunID, res.Serial, res.MAC, res.Secret = job.RunID, job.Device.Serial, job.Device.MAC, l.secret(job.RunID)
	if _, err := l.client.PutResult(context.Background(), res); err != nil {
		t.Fatal(err)
	}
}

// TestLineOverviewInChromium runs fake devices through the real API at six stations and
// checks what the line's operator sees in headless Chromium: each station with its device,
// "step n of m", the prompt in large type with the station's name, flashing and done named as
// such, the line's counts, first-pass yield and the failing step against its limit, the
// device no rule took and why; then search (a lower-case part of a serial) opens the history
// in view, and at 800 px nothing scrolls sideways and serials stay on one line. Screenshots at
// 1400 and 800 px go to out/dashboard/.
func TestLineOverviewInChromium(t *testing.T) {
	l := newStationLine(t)
	step := func(job protocol.Job, evs ...protocol.Event) { l.events(t, job, evs...) }

	// bench-1: at the power button, waiting for the operator.
	j1, _ := l.stationJob(t, 1, "GMB3-0001", "GM-Box 3")
	step(j1, protocol.Event{Seq: 1, Kind: protocol.EventStep, Step: "Wi-Fi sees the line AP", Status: protocol.StatusRunning},
		protocol.Event{Seq: 2, Kind: protocol.EventStep, Step: "Wi-Fi sees the line AP", Status: protocol.StatusPass},
		protocol.Event{Seq: 3, Kind: protocol.EventStep, Step: "Power button", Status: protocol.StatusRunning},
		protocol.Event{Seq: 4, Kind: protocol.EventPrompt, Step: "Power button", Message: "Press and release the POWER button"})
	// bench-2: tested, flashing.
	j2, _ := l.stationJob(t, 2, "GMB3-0002", "GM-Box 3")
	step(j2, protocol.Event{Seq: 1, Kind: protocol.EventStep, Step: "eMMC", Status: protocol.StatusPass},
		protocol.Event{Seq: 2, Kind: protocol.EventPhase, Phase: "flash", Status: protocol.StatusRunning},
		protocol.Event{Seq: 3, Kind: protocol.EventProgress, Phase: "flash", Done: 1 << 29, Total: 1 << 30})
	// bench-3 and bench-5: passed; bench-4: failed its Wi-Fi at -71 dBm against -65.
	j3, _ := l.stationJob(t, 3, "GMB3-0003", "GM-Box 3")
	step(j3, protocol.Event{Seq: 1, Kind: protocol.EventStep, Step: "eMMC", Status: protocol.StatusRunning})
	l.result(t, j3, protocol.Result{Status: protocol.StatusPass, Flash: &protocol.FlashResult{Target: "/dev/vda", Bytes: 1 << 30, DurationMS: 9000}})
	j4, _ := l.stationJob(t, 4, "gmb3-0004", "GM-Box 3")
	sig := -71.0
	l.result(t, j4, protocol.Result{Status: protocol.StatusFail, FailedStep: "Wi-Fi sees the line AP", Reason: "signal -71 dBm below -65 dBm",
		Steps: []protocol.StepResult{{Name: "Wi-Fi sees the line AP", Check: "wifi.scan", Status: protocol.StatusFail, Message: "signal -71 dBm below -65 dBm",
			Measurements: []protocol.Measurement{{Name: "signal_dbm", Value: &sig, Unit: "dBm"}}}}})
	j5, _ := l.stationJob(t, 5, "GMB3-0005", "GM-Box 3")
	l.result(t, j5, protocol.Result{Status: protocol.StatusPass})
	// bench-6: a device of another product: no rule.
	if _, ok := l.stationJob(t, 6, "XYZ-77", "Other Box"); ok {
		t.Fatal("a device of another product got a job")
	}

	b := startBrowser(t, l.srv.URL+"/")
	b.call(t, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false})
	card := func(name string) string {
		return fmt.Sprintf(`(document.querySelector('.station[data-station="%s"]') || {innerText: ""}).innerText`, name)
	}
	got := b.waitFor(t, card("bench-1"), "step 2 of 3")
	if !strings.Contains(got, "GMB3-0001") || !strings.Contains(got, "Power button") {
		t.Errorf("bench-1 card: %q", got)
	}
	prompt := b.waitFor(t, `(document.querySelector('.station[data-station="bench-1"] .prompt') || {innerText: ""}).innerText`, "Press and release the POWER button")
	if !strings.HasPrefix(prompt, "bench-1:") {
		t.Errorf("prompt without its station: %q", prompt)
	}
	if big := b.eval(t, `String(parseFloat(getComputedStyle(document.querySelector('.station[data-station="bench-1"] .prompt')).fontSize) >= 20)`); big != "true" {
		t.Error("the prompt is not in large type")
	}
	if got := b.waitFor(t, card("bench-2"), "flashing"); strings.Contains(got, "eMMC") {
		t.Errorf("flashing station still names the last step: %q", got)
	}
	if got := b.waitFor(t, card("bench-3"), "PASS"); !strings.Contains(got, "done") || strings.Contains(got, "eMMC") {
		t.Errorf("passed station: %q", got)
	}
	b.waitFor(t, card("bench-4"), "signal -71 dBm below -65 dBm")
	if got := b.eval(t, card("bench-6")); !strings.Contains(got, "free") {
		t.Errorf("bench-6 (no job) should be free: %q", got)
	}
	// The device table names the phase too.
	if got := b.waitFor(t, `document.getElementById("dev-52:54:00:00:01:02").innerText`, "flashing"); strings.Contains(got, "eMMC") {
		t.Errorf("flashing row: %q", got)
	}

	// Line figures: today 5 started, 2 passed, 1 failed, first-pass yield 2/3.
	today := b.waitFor(t, `(document.querySelector('.window[data-window="today"]') || {innerText: ""}).innerText`, "66.7%")
	for _, want := range []string{"started\n5", "passed\n2", "failed\n1"} {
		if !strings.Contains(strings.ReplaceAll(today, "\t", "\n"), want) {
			t.Errorf("today's figures lack %q: %q", want, today)
		}
	}
	pareto := b.waitFor(t, `document.getElementById("pareto").innerText`, "Wi-Fi sees the line AP")
	for _, want := range []string{"signal_dbm -71 dBm", "min_signal_dbm=-65", "100.0%"} {
		if !strings.Contains(pareto, want) {
			t.Errorf("pareto lacks %q: %q", want, pareto)
		}
	}
	um := b.waitFor(t, `document.getElementById("unmatched").innerText`, "XYZ-77")
	if !strings.Contains(um, `product "Other Box" does not match "GM-Box*"`) || !strings.Contains(um, "bench-6") {
		t.Errorf("unmatched device: %q", um)
	}
	b.screenshot(t, 1400, "line-1400.png")

	// Search: a lower-case part of a serial finds it; one match opens its history, in view.
	b.eval(t, `window.scrollTo(0, document.body.scrollHeight); document.getElementById("serial").value = "0004"; document.getElementById("find").requestSubmit(), "ok"`)
	hist := b.waitFor(t, `document.getElementById("history").hidden ? "" : document.getElementById("runs").innerText`, j4.RunID)
	if !strings.Contains(hist, "signal_dbm=-71 dBm") {
		t.Errorf("history: %q", hist)
	}
	if inView := b.eval(t, `(() => { const r = document.getElementById("history").getBoundingClientRect(); return String(r.top >= 0 && r.top < innerHeight && r.height > 100); })()`); inView != "true" {
		t.Error("the history opened out of view")
	}
	if rows := b.eval(t, `String(document.querySelectorAll("#rows tr").length)`); rows != "1" {
		t.Errorf("search 0004 shows %s rows", rows)
	}
	// A MAC part, in another spelling.
	b.eval(t, `document.getElementById("hclose").click(); document.getElementById("serial").value = "00-01-05"; document.getElementById("find").requestSubmit(), "ok"`)
	b.waitFor(t, `document.getElementById("rows").innerText`, "GMB3-0005")
	// The export links carry the filter.
	if href := b.eval(t, `document.getElementById("lcsv").href`); !strings.Contains(href, "q=00-01-05") || !strings.Contains(href, "format=csv") {
		t.Errorf("export link without the filter: %s", href)
	}
	b.eval(t, `document.getElementById("hclose").click(); document.getElementById("fclear").click(), "ok"`)
	b.waitFor(t, `document.getElementById("count").textContent`, "(5)")

	// A tablet: 800 px, nothing scrolls sideways, serials on one line.
	b.call(t, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 800, "height": 900, "deviceScaleFactor": 1, "mobile": false})
	time.Sleep(300 * time.Millisecond)
	if w := b.eval(t, `(() => { const e = document.documentElement; return e.scrollWidth <= e.clientWidth ? "fits" : e.scrollWidth + " > " + e.clientWidth; })()`); w != "fits" {
		t.Errorf("at 800 px the page scrolls sideways: %s px", w)
	}
	if lines := b.eval(t, `String(Math.max(...[...document.querySelectorAll("td.serial a")].map((a) => a.getClientRects().length)))`); lines != "1" {
		t.Errorf("a serial wraps onto %s lines at 800 px", lines)
	}
	b.screenshot(t, 800, "line-800.png")
}
