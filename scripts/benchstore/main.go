// Command benchstore measures how many results per second a line server sustains into each
// results database: it starts flashline-server on a loopback port with the SQLite default and
// then with store driver postgres, runs the same fleet of fake devices against each (hello,
// batches of events, final result, again), and prints throughput and latency with the ratios
// postgres/sqlite of the same run. For postgres the clock stops only once every result is in
// PostgreSQL (the line's queue is empty), so the figure is what reaches the plant database.
// Run by scripts/bench-store.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/protocol"
)

func main() {
	bin := flag.String("server", "", "flashline-server binary")
	dsn := flag.String("dsn", "", "PostgreSQL DSN (an empty database)")
	devices := flag.Int("devices", 200, "concurrent fake devices")
	dur := flag.Duration("duration", 10*time.Second, "load time per backend")
	batches := flag.Int("batches", 4, "event batches per run (4 events each)")
	flag.Parse()
	if *bin == "" || *dsn == "" {
		fmt.Fprintln(os.Stderr, "usage: benchstore -server BIN -dsn DSN [-devices N] [-duration D]")
		os.Exit(2)
	}
	var res []figures
	for _, driver := range []string{"sqlite", "postgres"} {
		f, err := bench(*bin, driver, *dsn, *devices, *batches, *dur)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchstore %s: %v\n", driver, err)
			os.Exit(1)
		}
		fmt.Printf("%-8s results %6d in %5.1f s = %7.1f results/s (%d events), result p50 %6.1f ms p99 %6.1f ms, events p50 %6.1f ms p99 %6.1f ms, drain %.1f s\n",
			driver, f.results, f.elapsed.Seconds(), f.rate(), f.events, ms(f.result.p(50)), ms(f.result.p(99)), ms(f.event.p(50)), ms(f.event.p(99)), f.drain.Seconds())
		res = append(res, f)
	}
	s, p := res[0], res[1]
	fmt.Printf("store: devices %d, postgres/sqlite results/s %.2f, result p50 %.2f, result p99 %.2f, events p50 %.2f, events p99 %.2f\n",
		*devices, p.rate()/s.rate(), ratio(p.result.p(50), s.result.p(50)), ratio(p.result.p(99), s.result.p(99)),
		ratio(p.event.p(50), s.event.p(50)), ratio(p.event.p(99), s.event.p(99)))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) p(q int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	return l.d[min(len(l.d)-1, len(l.d)*q/100)]
}

type figures struct {
	results, events int64
	elapsed, drain  time.Duration
	result, event   *latencies
}

func (f figures) rate() float64 { return float64(f.results) / f.elapsed.Seconds() }

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func bench(bin, driver, dsn string, devices, batches int, dur time.Duration) (f figures, err error) {
	dir, err := os.MkdirTemp("", "benchstore-")
	if err != nil {
		return figures{}, err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return figures{}, err
	}
	os.MkdirAll(filepath.Join(dir, "images"), 0o755)
	os.MkdirAll(filepath.Join(dir, "scenarios"), 0o755)
	os.WriteFile(filepath.Join(dir, "images", "os.img"), make([]byte, 4096), 0o644)
	os.WriteFile(filepath.Join(dir, "scenarios", "box.yaml"), []byte("name: box\nsteps: []\n"), 0o644)
	cfg := fmt.Sprintf("data_dir: data\nimages_dir: images\nscenarios_dir: scenarios\nhttp: {enabled: true, listen: %q}\n"+
		"images: [{name: os, file: os.img}]\nrules: [{name: all, scenario: box.yaml, image: os}]\nline: bench\n", addr)
	if driver == "postgres" {
		cfg += fmt.Sprintf("store: {driver: postgres, dsn: %q}\n", dsn)
	}
	cfgPath := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return figures{}, err
	}
	// The server's log goes to a file (requests cut at the end of the load are logged), shown
	// when the run fails.
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return figures{}, err
	}
	cmd := exec.Command(bin, "-config", cfgPath, "-log-level", "warn")
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return figures{}, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		logf.Close()
		if err != nil { // the named result: set by the time deferred calls run
			b, _ := os.ReadFile(logf.Name())
			os.Stderr.Write(b[max(0, len(b)-4000):])
		}
	}()
	base := "http://" + addr
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: devices, MaxConnsPerHost: devices}}
	if err := waitUp(hc, base); err != nil {
		return figures{}, err
	}
	client, err := lineclient.New(base, hc)
	if err != nil {
		return figures{}, err
	}
	f = figures{result: &latencies{}, event: &latencies{}}
	var results, events atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, devices)
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				if err := device(ctx, client, d, k, batches, f, &results, &events); err != nil && ctx.Err() == nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	f.elapsed = time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return figures{}, err
	}
	if driver == "postgres" {
		t0 := time.Now()
		if err := waitDrained(hc, base); err != nil {
			return figures{}, err
		}
		f.drain = time.Since(t0)
		f.elapsed += f.drain
	}
	f.results, f.events = results.Load(), events.Load()
	return f, nil
}

// device is one fake device's run: hello, event batches, result. A run cut by the end of
// the load time is not counted.
func device(ctx context.Context, c *lineclient.Client, d, k, batches int, f figures, results, events *atomic.Int64) error {
	mac := fmt.Sprintf("02:%02x:%02x:00:00:%02x", d>>8, d&0xff, k&0xff)
	serial := fmt.Sprintf("BENCH-%03d-%05d", d, k)
	resp, err := c.Hello(ctx, protocol.Hello{BootMAC: mac, Nonce: serial, AgentVersion: "bench",
		Inventory: protocol.Inventory{DMI: protocol.DMI{Serial: serial, Product: "GM-Box"}}})
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if resp.Job == nil {
		return errors.New("hello: no job")
	}
	job, err := protocol.OpenJob(*resp.Job, nil)
	if err != nil {
		return err
	}
	seq := int64(0)
	for range batches {
		var evs []protocol.Event
		for range 4 {
			seq++
			evs = append(evs, protocol.Event{Seq: seq, Time: time.Now(), Kind: protocol.EventStep, Step: "wifi", Status: protocol.StatusRunning})
		}
		t := time.Now()
		if _, err := c.PostEvents(ctx, protocol.EventBatch{RunID: job.RunID, Serial: serial, Events: evs, Secret: resp.RunSecret}); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		f.event.add(time.Since(t))
		events.Add(int64(len(evs)))
	}
	v := 1.0
	res := protocol.Result{RunID: job.RunID, Serial: serial, MAC: mac, Status: protocol.StatusPass, Finished: time.Now(), Secret: resp.RunSecret,
		Steps: []protocol.StepResult{{Name: "Wi-Fi", Check: "wifi.scan", Status: protocol.StatusPass, Attempts: 1, DurationMS: 800,
			Measurements: []protocol.Measurement{{Name: "signal_dbm", Value: &v, Unit: "dBm"}}}},
		Timings: []protocol.PhaseTiming{{Phase: "scenario", DurationMS: 800}}}
	t := time.Now()
	// Not the request's context: a result once sent is waited for, as an agent would.
	if _, err := c.PutResult(context.WithoutCancel(ctx), res); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	f.result.add(time.Since(t))
	results.Add(1)
	return nil
}

func waitUp(hc *http.Client, base string) error {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := hc.Get(base + "/metrics"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return errors.New("server did not come up")
}

func waitDrained(hc *http.Client, base string) error {
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := hc.Get(base + "/dashboard/api/status")
		if err != nil {
			continue
		}
		var st struct {
			Backlog struct {
				Pending   int64 `json:"pending"`
				Failed    int64 `json:"failed"`
				Reachable bool  `json:"reachable"`
			} `json:"backlog"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && st.Backlog.Failed > 0 {
			return fmt.Errorf("postgres refused %d changes", st.Backlog.Failed)
		}
		if err == nil && st.Backlog.Pending == 0 && st.Backlog.Reachable {
			return nil
		}
	}
	return errors.New("queue not drained within 5 minutes")
}
