package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/api"
	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/dashboard"
	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/store"
)

// line is an API server with the dashboard on a real loopback listener.
type line struct {
	srv    *httptest.Server
	dash   *dashboard.Dashboard
	client *lineclient.Client
	store  store.Backend

	mu      sync.Mutex
	secrets map[string]string // run id -> run secret, as the agent keeps it
}

// secret is the run secret the server issued with runID's job.
func (l *line) secret(runID string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.secrets[runID]
}

func newLine(t *testing.T) *line {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	return newLineWith(t, st)
}

// newLineWith serves a line on st, which it closes at the end of the test.
func newLineWith(t *testing.T, st store.Backend) *line {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "img"), 0o755)
	os.MkdirAll(filepath.Join(dir, "scen"), 0o755)
	os.WriteFile(filepath.Join(dir, "img", "os.img"), make([]byte, 4096), 0o644)
	os.WriteFile(filepath.Join(dir, "scen", "box.yaml"), []byte("name: box\n"), 0o644)
	ctx := context.Background()
	t.Cleanup(func() { st.Close() })
	imgs, err := jobs.LoadImages(ctx, []config.Image{{Name: "os", File: "os.img"}}, jobs.ImageOptions{Dir: filepath.Join(dir, "img"), Compute: true})
	if err != nil {
		t.Fatal(err)
	}
	is, err := jobs.New(jobs.Options{Images: imgs, ScenariosDir: filepath.Join(dir, "scen"),
		Rules: []config.Rule{{Name: "all", Scenario: "box.yaml", Image: "os", After: "reboot"}}})
	if err != nil {
		t.Fatal(err)
	}
	d := dashboard.New(dashboard.Options{Store: st, Operators: testGuard(t, true)})
	dctx, cancel := context.WithCancel(ctx)
	go d.Run(dctx)
	a, err := api.New(api.Options{Store: st, Issuer: is, Notifier: d, Netboot: netbootSeen{}})
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

// netbootSeen is the line server's own view of every device's netboot.
type netbootSeen struct{}

func (netbootSeen) Hello(net.HardwareAddr, netip.Addr, time.Time) []protocol.PhaseTiming {
	return []protocol.PhaseTiming{{Phase: "pxe_dhcp", DurationMS: 850}}
}

func (l *line) job(t *testing.T, mac, serial string) protocol.Job {
	t.Helper()
	resp, err := l.client.Hello(context.Background(), protocol.Hello{BootMAC: mac, Nonce: "n",
		Inventory: protocol.Inventory{DMI: protocol.DMI{Serial: serial, Product: "GM-Box 3"}},
		Timings:   []protocol.PhaseTiming{{Phase: "dhcp", DurationMS: 1234}}})
	if err != nil || resp.Job == nil {
		t.Fatalf("hello: %v %+v", err, resp)
	}
	job, err := protocol.OpenJob(*resp.Job, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.secrets[job.RunID] = resp.RunSecret
	l.mu.Unlock()
	return job
}

func (l *line) events(t *testing.T, job protocol.Job, evs ...protocol.Event) {
	t.Helper()
	if _, err := l.client.PostEvents(context.Background(), protocol.EventBatch{RunID: job.RunID, Serial: job.Device.Serial, Events: evs, Secret: l.secret(job.RunID)}); err != nil {
		t.Fatal(err)
	}
}

// browser is headless Chromium driven over the DevTools protocol.
type browser struct {
	cmd *exec.Cmd
	ws  *websocket.Conn
	id  int
}

func startBrowser(t *testing.T, url string) *browser {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install -y --no-install-recommends chromium; scripts/setup does it)")
	}
	// The profile directory is not t.TempDir(): Chromium's helper processes may still write
	// into it for a moment after they are killed, and t.TempDir's cleanup fails on that.
	profile, err := os.MkdirTemp("", "flashline-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+profile,
		"--remote-debugging-port=0", "--remote-allow-origins=*", url)
	// Its own process group, so that the cleanup ends Chromium's helpers too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	// Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID".
	re := regexp.MustCompile(`DevTools listening on ws://([^/]+)/`)
	hostc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				hostc <- m[1]
			}
		}
	}()
	var host string
	select {
	case host = <-hostc:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not start its DevTools server")
	}
	var wsURL string
	for deadline := time.Now().Add(20 * time.Second); wsURL == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + host + "/json/list")
		if err != nil {
			continue
		}
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		json.NewDecoder(resp.Body).Decode(&targets)
		resp.Body.Close()
		for _, tg := range targets {
			if tg.Type == "page" && strings.HasPrefix(tg.URL, url) {
				wsURL = tg.WebSocketDebuggerURL
			}
		}
	}
	if wsURL == "" {
		t.Fatal("no page target in chromium")
	}
	ws, err := websocket.Dial(wsURL, "", "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &browser{cmd: cmd, ws: ws}
}

// eval evaluates a JavaScript expression in the page and returns its string value.
func (b *browser) eval(t *testing.T, expr string) string {
	t.Helper()
	b.id++
	req := map[string]any{"id": b.id, "method": "Runtime.evaluate", "params": map[string]any{"expression": expr, "returnByValue": true}}
	if err := websocket.JSON.Send(b.ws, req); err != nil {
		t.Fatal(err)
	}
	b.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var resp struct {
			ID     int `json:"id"`
			Result struct {
				Result struct {
					Value any `json:"value"`
				} `json:"result"`
			} `json:"result"`
		}
		if err := websocket.JSON.Receive(b.ws, &resp); err != nil {
			if err == io.EOF {
				t.Fatal("devtools connection closed")
			}
			t.Fatal(err)
		}
		if resp.ID == b.id {
			return fmt.Sprint(resp.Result.Result.Value)
		}
	}
}

// waitFor polls expr until it contains want.
func (b *browser) waitFor(t *testing.T, expr, want string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = b.eval(t, expr); strings.Contains(got, want) {
			return got
		}
	}
	t.Fatalf("page never showed %q; last saw %q", want, got)
	return ""
}

// TestDashboardLiveInChromium opens the dashboard in headless Chromium, then drives a device
// through its journey over the agent API: each change must appear in the open page through
// the live stream, without a reload.
func TestDashboardLiveInChromium(t *testing.T) {
	l := newLine(t)
	first := l.job(t, "52:54:00:00:00:01", "GMB3-0001")
	l.events(t, first, protocol.Event{Seq: 1, Kind: protocol.EventStep, Step: "Wi-Fi sees the line AP", Status: protocol.StatusRunning})

	b := startBrowser(t, l.srv.URL+"/")
	row := `(document.getElementById("dev-52:54:00:00:00:01") || {innerText: ""}).innerText`
	b.waitFor(t, row, "Wi-Fi sees the line AP")
	// The page is now subscribed; everything below arrives over server-sent events.
	for deadline := time.Now().Add(10 * time.Second); l.dash.Clients() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the page did not open the live stream")
		}
	}
	b.waitFor(t, `document.getElementById("live").textContent`, "live")
	reloads := b.eval(t, `String(window.performance.getEntriesByType("navigation").length)`)

	l.events(t, first, protocol.Event{Seq: 2, Kind: protocol.EventStep, Step: "LTE modem, SIM and network", Status: protocol.StatusRunning})
	b.waitFor(t, row, "LTE modem, SIM and network")
	l.events(t, first, protocol.Event{Seq: 3, Kind: protocol.EventProgress, Phase: "flash", Done: 3 << 29, Total: 4 << 29})
	b.waitFor(t, row, "75%")

	// A second device appears live; the first passes.
	second := l.job(t, "52:54:00:00:00:02", "GMB3-0002")
	b.waitFor(t, `(document.getElementById("dev-52:54:00:00:00:02") || {innerText: ""}).innerText`, "GMB3-0002")
	if _, err := l.client.PutResult(context.Background(), protocol.Result{RunID: first.RunID, Serial: first.Device.Serial,
		MAC: first.Device.MAC, Status: protocol.StatusPass, Steps: []protocol.StepResult{{Name: "Wi-Fi sees the line AP", Status: protocol.StatusPass}},
		Secret: l.secret(first.RunID)}); err != nil {
		t.Fatal(err)
	}
	got := b.waitFor(t, row, "PASS")
	if !strings.Contains(got, "local disk") {
		t.Errorf("passed device row does not show its next boot is the local disk: %q", got)
	}
	if _, err := l.client.PutResult(context.Background(), protocol.Result{RunID: second.RunID, Serial: second.Device.Serial,
		Status: protocol.StatusFail, FailedStep: "Power button", Reason: "no key press within 30s", Secret: l.secret(second.RunID)}); err != nil {
		t.Fatal(err)
	}
	got = b.waitFor(t, `document.getElementById("dev-52:54:00:00:00:02").innerText`, "FAIL")
	if !strings.Contains(got, "Power button") {
		t.Errorf("failed device row lacks the failed step: %q", got)
	}
	if now := b.eval(t, `String(window.performance.getEntriesByType("navigation").length)`); now != reloads {
		t.Errorf("the page reloaded (%s -> %s navigations): updates were not live", reloads, now)
	}
	// The line's figures (refreshed every 5 s); no plant database, so no queue banner.
	b.waitFor(t, `document.getElementById("figures").textContent`, "2 runs, yield 50.0%")
	if hidden := b.eval(t, `String(document.getElementById("backlog").hidden)`); hidden != "true" {
		t.Errorf("queue banner shown on a SQLite line")
	}

	// History with the phase timings, opened by clicking the serial.
	b.eval(t, `document.querySelector('a[data-serial="GMB3-0001"]').click(), "ok"`)
	hist := b.waitFor(t, `document.getElementById("runs").innerText`, first.RunID)
	if !strings.Contains(hist, "dhcp") || !strings.Contains(hist, "1.23 s") {
		t.Errorf("history lacks the dhcp phase timing: %q", hist)
	}
	if !strings.Contains(hist, "pxe_dhcp") || !strings.Contains(hist, "0.85 s") ||
		b.eval(t, `String(document.querySelectorAll("#runs .tb.server").length)`) == "0" {
		t.Errorf("history lacks the server's pxe_dhcp timing: %q", hist)
	}

	// Reset from the page (confirm() answered yes) puts the device back on provisioning:
	// an operator logs in first (operators_test.go).
	b.login(t, l.srv.URL)
	b.eval(t, `window.confirm = () => true; document.querySelector('#dev-52\\:54\\:00\\:00\\:00\\:01 button.reset').click(), "ok"`)
	b.waitFor(t, row, "provision")
	if lb, _ := l.store.LocalBoot(context.Background(), "52:54:00:00:00:01"); lb {
		t.Fatal("reset from the dashboard did not reach the store")
	}
}
