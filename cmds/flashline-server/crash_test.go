package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/store"
	"github.com/flashline/flashline/server/store/storetest"
)

// builtServer is the binary built once for all tests of this package (TestMain).
var builtServer struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtServer.dir != "" {
		os.RemoveAll(builtServer.dir)
	}
	os.Exit(code)
}

// buildServer builds this command once per test binary run.
func buildServer(t *testing.T) string {
	t.Helper()
	b := &builtServer
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "flashline-server-test-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "flashline-server")
		cmd := exec.Command("go", "build", "-o", b.path, ".")
		cmd.Stderr = os.Stderr
		b.err = cmd.Run()
	})
	if b.err != nil {
		t.Fatalf("build: %v", b.err)
	}
	return b.path
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lineDir writes a config, an image and a scenario, and returns the config's path.
func lineDir(t *testing.T, addr string) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	os.MkdirAll(filepath.Join(dir, "images"), 0o755)
	os.MkdirAll(filepath.Join(dir, "scenarios"), 0o755)
	os.WriteFile(filepath.Join(dir, "images", "os.img"), bytes.Repeat([]byte{0x5a}, 1<<20), 0o644)
	os.WriteFile(filepath.Join(dir, "scenarios", "box.yaml"), []byte("name: box\nsteps:\n  - name: memory\n    memory.min: {min: 1MB}\n"), 0o644)
	cfg = filepath.Join(dir, "server.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
data_dir: data
images_dir: images
scenarios_dir: scenarios
http: {enabled: true, listen: %q}
images: [{name: os, file: os.img}]
rules: [{name: all, scenario: box.yaml, image: os}]
# The tests play a whole line from one address: lift the per-address connection cap.
limits: {http: {max_conns_per_client: 1024}}
`, addr)), 0o644)
	return dir, cfg
}

// waitBacklog waits until the line server has delivered its queue to the plant database.
func waitBacklog(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var st struct {
			Backlog store.Backlog `json:"backlog"`
		}
		resp, err := http.Get(base + "/dashboard/api/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if err == nil && st.Backlog.Pending == 0 && st.Backlog.Reachable {
			if st.Backlog.Failed != 0 {
				t.Fatalf("the plant database refused %d changes: %s", st.Backlog.Failed, st.Backlog.LastError)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not delivered: %+v %v", st.Backlog, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type server struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

func startServer(t *testing.T, bin, cfg, addr string) *server {
	t.Helper()
	return startServerAt(t, bin, cfg, "http://"+addr+"/metrics", http.DefaultClient)
}

// startServerAt starts the server and waits until readyURL answers 200 through hc.
func startServerAt(t *testing.T, bin, cfg, readyURL string, hc *http.Client) *server {
	t.Helper()
	s := &server{log: &bytes.Buffer{}}
	s.cmd = exec.Command(bin, "-config", cfg, "-log-level", "warn")
	s.cmd.Stderr = &lockedWriter{w: s.log}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd.Process.Kill()
	t.Fatalf("server did not come up:\n%s", s.log)
	return nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// String is what was written so far; safe while the process still writes.
func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func result(job protocol.Job, i int) protocol.Result {
	v := float64(i)
	return protocol.Result{RunID: job.RunID, Serial: job.Device.Serial, MAC: job.Device.MAC, Status: protocol.StatusPass,
		Steps: []protocol.StepResult{
			{Name: "Wi-Fi", Check: "wifi.scan", Status: protocol.StatusPass, Attempts: 1, DurationMS: 800,
				Measurements: []protocol.Measurement{{Name: "signal_dbm", Value: &v, Unit: "dBm"}, {Name: "ssid", Text: "LINE"}}},
			{Name: "LTE", Check: "lte.modem", Status: protocol.StatusPass, Attempts: 1, DurationMS: 1500,
				Measurements: []protocol.Measurement{{Name: "csq", Value: &v}, {Name: "imei", Text: fmt.Sprint(350000000000000 + i)}}},
			{Name: "eMMC", Check: "disk.present", Status: protocol.StatusPass, Attempts: 1, DurationMS: 3,
				Measurements: []protocol.Measurement{{Name: "size_bytes", Value: &v}, {Name: "model", Text: "QEMU"}}},
		},
		Flash:    &protocol.FlashResult{Target: "/dev/vda", Bytes: 1 << 20, DurationMS: 900},
		Timings:  []protocol.PhaseTiming{{Phase: "scenario", DurationMS: 2303}, {Phase: "flash", DurationMS: 900}},
		Finished: time.Now()}
}

// TestResultsSurviveKill9 posts 1000 results concurrently, kills the server with SIGKILL in the
// middle, restarts it on the same data directory and lets the agents' client retry: every
// result must be stored exactly once.
func TestResultsSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	testResultsSurviveKill9(t, nil)
}

// TestResultsSurviveKill9Postgres is the same with the results going to PostgreSQL (through
// the line's queue), and PostgreSQL itself restarted once while results arrive: every result
// must be in PostgreSQL exactly once at the end.
func TestResultsSurviveKill9Postgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	testResultsSurviveKill9(t, storetest.OwnCluster(t))
}

func testResultsSurviveKill9(t *testing.T, pg *storetest.Cluster) {
	const n = 1000
	bin := buildServer(t)
	addr := freePort(t)
	dir, cfg := lineDir(t, addr)
	if pg != nil {
		f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "line: L1\nstore: {driver: postgres, dsn: %q}\n", pg.DSN)
		f.Close()
	}
	srv := startServer(t, bin, cfg, addr)
	defer func() { srv.cmd.Process.Kill(); srv.cmd.Wait() }()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 200, MaxConnsPerHost: 400}}
	client, err := lineclient.New("http://"+addr, hc)
	if err != nil {
		t.Fatal(err)
	}
	jobs := make([]protocol.Job, n)
	secrets := make([]string, n) // run id -> secret, as each agent keeps it
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			h := protocol.Hello{AgentVersion: "crash-test", BootMAC: fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff), Nonce: fmt.Sprint("n", i),
				Inventory: protocol.Inventory{DMI: protocol.DMI{Serial: fmt.Sprintf("SN%04d", i), Product: "GM-Box"}},
				Timings:   []protocol.PhaseTiming{{Phase: "dhcp", DurationMS: 1000}}}
			resp, err := client.Hello(ctx, h)
			if err != nil || resp.Job == nil {
				t.Errorf("hello %d: %v %+v", i, err, resp)
				return
			}
			if jobs[i], err = protocol.OpenJob(*resp.Job, nil); err != nil {
				t.Error(err)
			}
			secrets[i] = resp.RunSecret
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	var acked, dups, retries atomic.Int64
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if pg != nil {
				// Spread over 8 s, so that the PostgreSQL restart and the kill both happen
				// while results arrive (acknowledgements are quick while it is down).
				time.Sleep(time.Duration(i) * 8 * time.Millisecond)
			}
			res := result(jobs[i], i)
			res.Secret = secrets[i]
			ack, err := client.PutResultRetrying(ctx, res, func(error, time.Duration) { retries.Add(1) })
			if err != nil {
				errs <- fmt.Errorf("result %d: %w", i, err)
				return
			}
			if ack.Duplicate {
				dups.Add(1)
			}
			acked.Add(1)
		}()
	}
	close(start)
	killAt := int64(n / 5)
	if pg != nil {
		// PostgreSQL goes away while results arrive (they are acknowledged from the line's
		// queue meanwhile) and comes back; the line server is killed later.
		for acked.Load() < n/10 {
			time.Sleep(time.Millisecond)
		}
		pg.Crash(t)
		t.Logf("crashed PostgreSQL with %d of %d results acknowledged", acked.Load(), n)
		for wait := time.Now().Add(20 * time.Second); acked.Load() < n/4 && time.Now().Before(wait); {
			time.Sleep(time.Millisecond)
		}
		pg.Start(t)
		t.Logf("started PostgreSQL again with %d of %d results acknowledged", acked.Load(), n)
		killAt = max(n/2, acked.Load()+n/20)
	}
	// Kill -9 once part of the results are acknowledged and the rest are in flight.
	for a := acked.Load(); a < killAt && a < n; a = acked.Load() {
		time.Sleep(time.Millisecond)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	atKill := acked.Load()
	t.Logf("killed the server with %d of %d results acknowledged", atKill, n)
	if atKill >= n {
		t.Fatal("all results were acknowledged before the kill: the test proves nothing")
	}
	srv = startServer(t, bin, cfg, addr)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("after restart: %d acknowledged, %d of them as duplicates (stored before the kill, answer lost), %d retries", acked.Load(), dups.Load(), retries.Load())

	if pg != nil {
		waitBacklog(t, "http://"+addr)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"flashline_store_queue_pending 0", "flashline_store_queue_failed 0", "flashline_store_plant_reachable 1"} {
			if !strings.Contains(b.String(), want+"\n") {
				t.Errorf("metrics lack %q", want)
			}
		}
	}
	// Stop the server cleanly and count rows.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	srv.cmd.Wait()
	st, err := store.Open(context.Background(), filepath.Join(dir, "data", "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.Count(context.Background())
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := store.Counts{Devices: n, Runs: n, Results: n, Steps: 3 * n, Measurements: 6 * n, Timings: 3 * n}
	if c != want {
		t.Fatalf("rows after kill -9 and retries: %+v, want %+v", c, want)
	}
	if pg != nil {
		st, err := store.OpenOptions(context.Background(), store.Options{Driver: store.DriverPostgres, DSN: pg.DSN})
		if err != nil {
			t.Fatal(err)
		}
		c, err := st.Count(context.Background())
		f, ferr := st.Figures(context.Background(), store.FiguresFilter{Line: "L1"})
		st.Close()
		if err != nil || ferr != nil {
			t.Fatal(err, ferr)
		}
		if c != want {
			t.Fatalf("PostgreSQL rows after kill -9, a PostgreSQL restart and retries: %+v, want %+v", c, want)
		}
		if f.Total.Passed != n {
			t.Fatalf("PostgreSQL has %d passed runs on line L1, want %d", f.Total.Passed, n)
		}
		t.Logf("PostgreSQL: %d results, 0 lost, 0 duplicated", c.Results)
	}

	// The CLI reads the same database: export one serial, reset one device.
	out, err := exec.Command(bin, "export", "-data", filepath.Join(dir, "data"), "-serial", "SN0007", "-format", "csv").Output()
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 1+1+3+6+1+3 {
		t.Fatalf("csv export (%v):\n%s", err, out)
	}
	out, err = exec.Command(bin, "export", "-config", cfg, "-serial", "SN0007").Output()
	var ex store.Export
	if err != nil || json.Unmarshal(out, &ex) != nil || len(ex.Runs) != 1 || len(ex.Runs[0].Steps) != 3 || ex.Runs[0].Status != "pass" {
		t.Fatalf("json export (%v):\n%s", err, out)
	}
	out, err = exec.Command(bin, "reset", "-config", cfg, "-mac", "02-00-00-00-00-07").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "02:00:00:00:00:07") {
		t.Fatalf("reset: %v %s", err, out)
	}
	st, _ = store.Open(context.Background(), filepath.Join(dir, "data", "results.db"))
	defer st.Close()
	if lb, _ := st.LocalBoot(context.Background(), "02:00:00:00:00:07"); lb {
		t.Fatal("reset did not put the device back on provisioning")
	}
	if lb, _ := st.LocalBoot(context.Background(), "02:00:00:00:00:08"); !lb {
		t.Fatal("a passed device is not on local boot")
	}
}
