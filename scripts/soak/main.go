// Command soak is the soak test of scripts/bench-soak: it starts a real flashline-server on
// loopback, drives fake devices through hello, events and result against hostile clients (slow
// headers, stalled bodies, stalled image downloads, oversized bodies) for a fixed time, then
// stops the server and checks every acknowledged result in its database. It prints the lost
// results, the server's peak RSS and the hello latency against their bounds, and exits 1 when
// a result was lost (with -strict, also when a bound is broken).
//
// Each fake device has its own loopback address (127.0.1.N), as devices on a line have their
// own, so the server's per-address connection cap applies to the hostile clients (127.0.2.N)
// and not to the line as a whole.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/store"
)

func main() {
	bin := flag.String("server", "", "flashline-server binary")
	cfg := flag.String("config", "", "its configuration (HTTP on -addr)")
	addr := flag.String("addr", "", "host:port the server listens on")
	db := flag.String("db", "", "the server's results.db, checked after the run")
	image := flag.String("image", "/images/soak.img", "path of a large image the stalling clients fetch")
	devices := flag.Int("devices", 200, "concurrent fake devices")
	hostile := flag.Int("hostile", 50, "hostile clients")
	duration := flag.Duration("duration", 60*time.Second, "how long the devices and hostile clients run")
	maxRSS := flag.Int64("max-rss-mb", 150, "bound on the server's peak RSS (MB)")
	maxP99 := flag.Duration("max-hello-p99", 2*time.Second, "bound on the hello p99 latency")
	strict := flag.Bool("strict", false, "exit 1 when the RSS or latency bound is broken too")
	attacks := flag.String("attacks", "0123", "attacks the hostile clients take turns at: 0 slow headers, 1 stalled bodies, 2 stalled downloads, 3 oversized bodies")
	flag.Parse()
	if *bin == "" || *cfg == "" || *addr == "" || *db == "" {
		fmt.Fprintln(os.Stderr, "usage: soak -server BIN -config FILE -addr HOST:PORT -db results.db [flags]")
		os.Exit(2)
	}
	r, err := run(config{bin: *bin, cfg: *cfg, addr: *addr, db: *db, image: *image, devices: *devices, hostile: *hostile, duration: *duration, attacks: *attacks})
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	fmt.Printf("runs: %d started, %d results acknowledged, %d results lost\n", r.started, r.acked, r.lost)
	fmt.Printf("hello: %d answered, p50 %s, p99 %s, max %s (bound p99 < %s)\n", r.hellos, r.p50, r.p99, r.max, *maxP99)
	fmt.Printf("hostile: %s\n", r.hostile)
	fmt.Printf("server peak RSS: %d MB (bound < %d MB)\n", r.peakRSS>>20, *maxRSS)
	// Lost results are a defect and fail the run; RSS and latency are goals, reported as the
	// other benchmarks report theirs (the machine's load moves them).
	if r.lost > 0 || r.acked == 0 {
		fmt.Println("FAIL: results were lost")
		os.Exit(1)
	}
	verdict := func(ok bool) string {
		if ok {
			return "within its bound"
		}
		return "OVER its bound"
	}
	fmt.Printf("0 lost results; peak RSS %s; hello p99 %s\n", verdict(r.peakRSS>>20 < *maxRSS), verdict(r.p99 < *maxP99))
	if *strict && (r.peakRSS>>20 >= *maxRSS || r.p99 >= *maxP99) {
		os.Exit(1)
	}
}

type config struct {
	bin, cfg, addr, db, image string
	devices, hostile          int
	duration                  time.Duration
	attacks                   string
}

type report struct {
	started, acked, lost int
	hellos               int
	p50, p99, max        time.Duration
	peakRSS              int64
	hostile              string
}

func run(c config) (report, error) {
	var rep report
	srv := exec.Command(c.bin, "serve", "-config", c.cfg, "-log-level", "error")
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		return rep, fmt.Errorf("start server: %w", err)
	}
	defer srv.Process.Kill()
	if err := waitUp(c.addr, 30*time.Second); err != nil {
		return rep, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		helloTs []time.Duration
		acked   = map[string]protocol.Status{} // run id -> status the server acknowledged
		started atomic.Int64
		unacked atomic.Int64 // results never acknowledged
		hstats  hostileStats
	)
	for i := range c.hostile {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind := int(c.attacks[i%len(c.attacks)] - '0')
			hostileClient(ctx, i, kind, c.addr, c.image, &hstats)
		}()
	}
	for i := range c.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := newDevice(i, c.addr)
			// Devices come onto the line over the first seconds, not in one instant.
			sleep(ctx, time.Duration(rand.IntN(3000))*time.Millisecond)
			for ctx.Err() == nil {
				run, lat, err := d.provision(ctx)
				if lat > 0 {
					mu.Lock()
					helloTs = append(helloTs, lat)
					mu.Unlock()
				}
				if run.id == "" {
					if err != nil && ctx.Err() == nil {
						time.Sleep(200 * time.Millisecond)
					}
					continue
				}
				started.Add(1)
				if err != nil {
					unacked.Add(1)
					fmt.Fprintf(os.Stderr, "device %d run %s: %v\n", i, run.id, err)
					continue
				}
				mu.Lock()
				acked[run.id] = run.status
				mu.Unlock()
				// The next device takes this one's place on the line.
				sleep(ctx, time.Duration(500+rand.IntN(1000))*time.Millisecond)
			}
		}()
	}
	wg.Wait()

	// Peak RSS is the kernel's high-water mark of the process, read before it exits.
	rep.peakRSS = vmHWM(srv.Process.Pid)
	srv.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		srv.Process.Kill()
		<-done
	}

	// Every acknowledged result must be in the database, with the status sent.
	st, err := store.Open(context.Background(), c.db)
	if err != nil {
		return rep, fmt.Errorf("open results: %w", err)
	}
	defer st.Close()
	lost := int(unacked.Load())
	for id, status := range acked {
		r, err := st.Run(context.Background(), id)
		if err != nil || !r.HasResult || r.Status != string(status) {
			lost++
			fmt.Fprintf(os.Stderr, "run %s: acknowledged %s, stored %q (has result %v, err %v)\n", id, status, r.Status, r.HasResult, err)
		}
	}
	rep.started, rep.acked, rep.lost = int(started.Load()), len(acked), lost
	slices.Sort(helloTs)
	rep.hellos = len(helloTs)
	if n := len(helloTs); n > 0 {
		rep.p50, rep.p99, rep.max = helloTs[n/2], helloTs[min(n-1, n*99/100)], helloTs[n-1]
	}
	rep.hostile = hstats.String()
	return rep, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func waitUp(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("server not listening on %s after %s", addr, within)
}

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// device is one fake device: its own address, serial and MAC.
type device struct {
	n      int
	base   string
	client *http.Client
	serial string
	mac    string
	runs   int
	// secret is the current run's run secret (HelloResponse.RunSecret).
	secret string
}

func newDevice(n int, addr string) *device {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+n%250)).To4()}
	if n >= 250 {
		local.IP = net.IPv4(127, 0, 3, byte(1+n%250)).To4()
	}
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}
	return &device{n: n, base: "http://" + addr, client: &http.Client{Transport: tr, Timeout: 20 * time.Second},
		serial: fmt.Sprintf("SOAK-%04d", n), mac: fmt.Sprintf("02:50:00:00:%02x:%02x", n>>8, n&0xff)}
}

type runInfo struct {
	id     string
	status protocol.Status
}

// do is the one place a device's requests are built: a header every request must carry (a
// per-run secret, say) is added here.
func (d *device) do(ctx context.Context, method, path string, in, out any) (int, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if d.secret != "" && path != protocol.PathHello {
		// As the agent does: the run's writes carry the secret its hello answer issued.
		req.Header.Set("Authorization", "Bearer "+d.secret)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(body))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(body, out)
	}
	return resp.StatusCode, nil
}

// provision is one run: hello, a few event batches, the result retried until stored (as the
// agent does). It returns the hello's latency when it was answered.
func (d *device) provision(ctx context.Context) (runInfo, time.Duration, error) {
	d.runs++
	h := protocol.Hello{AgentVersion: "soak", BootMAC: d.mac, Nonce: fmt.Sprintf("%s-%d", d.serial, d.runs),
		Inventory: protocol.Inventory{DMI: protocol.DMI{Product: "GM-Box soak", Serial: d.serial}, CPU: protocol.CPU{Cores: 2},
			Disks:   []protocol.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 8 << 30, Transport: "virtio"}},
			NICs:    []protocol.NIC{{Name: "eth0", MAC: d.mac, Carrier: true}},
			Modules: []string{"wifi"}},
		Timings: []protocol.PhaseTiming{{Phase: "dhcp", DurationMS: 900}}}
	var hr protocol.HelloResponse
	start := time.Now()
	if _, err := d.do(ctx, "POST", protocol.PathHello, h, &hr); err != nil {
		return runInfo{}, 0, err
	}
	lat := time.Since(start)
	d.secret = hr.RunSecret
	if hr.Job == nil {
		return runInfo{}, lat, fmt.Errorf("no job: %s", hr.Message)
	}
	var job protocol.Job
	if err := json.Unmarshal(hr.Job.Job, &job); err != nil {
		return runInfo{}, lat, fmt.Errorf("job: %w", err)
	}
	ri := runInfo{id: job.RunID, status: protocol.StatusPass}
	if rand.IntN(5) == 0 {
		ri.status = protocol.StatusFail
	}
	// The device's work goes on whatever happens to the test's clock: a run once started
	// reports its result (the agent retries it for as long as it takes).
	wctx := context.WithoutCancel(ctx)
	seq := int64(0)
	for _, step := range []string{"wifi.scan", "disk.smart", "flash"} {
		var evs []protocol.Event
		for _, st := range []protocol.Status{protocol.StatusRunning, protocol.StatusPass} {
			seq++
			evs = append(evs, protocol.Event{Seq: seq, Time: time.Now(), Kind: protocol.EventStep, Step: step, Status: st})
		}
		if err := retry(wctx, func() error {
			_, err := d.do(wctx, "POST", "/api/v1/runs/"+job.RunID+"/events", protocol.EventBatch{RunID: job.RunID, Serial: d.serial, Events: evs}, nil)
			return err
		}); err != nil {
			return ri, lat, fmt.Errorf("events: %w", err)
		}
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond) // the step runs
	}
	res := protocol.Result{RunID: job.RunID, Serial: d.serial, MAC: d.mac, Status: ri.status}
	if ri.status == protocol.StatusFail {
		res.FailedStep = "wifi.scan"
	}
	var ack protocol.ResultAck
	if err := retry(wctx, func() error {
		_, err := d.do(wctx, "PUT", "/api/v1/runs/"+job.RunID+"/result", res, &ack)
		if err == nil && !ack.Stored {
			err = errors.New("not stored")
		}
		return err
	}); err != nil {
		return ri, lat, fmt.Errorf("result: %w", err)
	}
	return ri, lat, nil
}

// retry repeats f for up to a minute, as the agent's reporting does.
func retry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// hostileStats counts what the hostile clients did and how the server answered.
type hostileStats struct {
	conns, refused503, slowHeaderCut, slowBody408, stalledCut, oversized413 atomic.Int64
}

func (h *hostileStats) String() string {
	return fmt.Sprintf("%d connections, %d refused (503), %d slow-header connections cut, %d stalled bodies answered 408, %d stalled downloads cut, %d oversized bodies answered 413",
		h.conns.Load(), h.refused503.Load(), h.slowHeaderCut.Load(), h.slowBody408.Load(), h.stalledCut.Load(), h.oversized413.Load())
}

// hostileClient runs one of four attacks from its own loopback address until ctx ends.
func hostileClient(ctx context.Context, n, kind int, addr, image string, st *hostileStats) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 2, byte(1+n%250)).To4()}
	dial := func() (net.Conn, error) {
		c, err := (&net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			st.conns.Add(1)
			context.AfterFunc(ctx, func() { c.Close() })
		}
		return c, err
	}
	// Each attack keeps several connections going at once, more than the per-address cap
	// for the stalled downloads.
	par := map[int]int{0: 8, 1: 8, 2: 40, 3: 2}[kind]
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := dial()
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				attack(ctx, kind, c, image, st)
				c.Close()
			}
		}()
	}
	wg.Wait()
}

func attack(ctx context.Context, kind int, c net.Conn, image string, st *hostileStats) {
	buf := make([]byte, 4096)
	// refused reports whether the server turned the connection away at once (over a cap).
	answer := func(within time.Duration) string {
		c.SetReadDeadline(time.Now().Add(within))
		n, _ := io.ReadAtLeast(c, buf, 12)
		return string(buf[:n])
	}
	switch kind {
	case 0: // slow headers: one header line every 2 s, never the end of the headers
		io.WriteString(c, "GET /dashboard/api/devices HTTP/1.1\r\nHost: x\r\n")
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", i); err != nil {
				st.slowHeaderCut.Add(1)
				return
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(buf)
			if n > 0 || (err != nil && !isTimeout(err)) {
				if strings.Contains(string(buf[:n]), " 503 ") {
					st.refused503.Add(1)
				} else {
					st.slowHeaderCut.Add(1)
				}
				return
			}
		}
	case 1: // stalled body: a hello announcing 10 kB that sends 20 bytes
		io.WriteString(c, "POST "+protocol.PathHello+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{\"boot_mac\":\"02:00:00")
		a := answer(2 * time.Minute)
		switch {
		case strings.Contains(a, " 408 "):
			st.slowBody408.Add(1)
		case strings.Contains(a, " 503 "):
			st.refused503.Add(1)
		}
	case 2: // stalled download: ask for the image, read nothing
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4 << 10)
		}
		io.WriteString(c, "GET "+image+" HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(500 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, _ := c.Read(buf[:64])
		if strings.Contains(string(buf[:n]), " 503 ") {
			st.refused503.Add(1)
			time.Sleep(time.Second)
			return
		}
		// Wait, still not reading, for the server to give up on us: then the socket errs.
		for ctx.Err() == nil {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			time.Sleep(5 * time.Second)
			if _, err := c.Write([]byte("x")); err != nil {
				st.stalledCut.Add(1)
				return
			}
			if tcpClosedByPeer(c) {
				st.stalledCut.Add(1)
				return
			}
		}
	case 3: // oversized body: 6 MB of JSON string as fast as possible
		io.WriteString(c, "POST "+protocol.PathHello+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 6000000\r\n\r\n{\"nonce\":\"")
		chunk := bytes.Repeat([]byte("A"), 64<<10)
		for sent := 0; sent < 6_000_000 && ctx.Err() == nil; sent += len(chunk) {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(chunk); err != nil {
				break
			}
		}
		a := answer(5 * time.Second)
		switch {
		case strings.Contains(a, " 413 "):
			st.oversized413.Add(1)
		case strings.Contains(a, " 503 "):
			st.refused503.Add(1)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tcpClosedByPeer peeks at the connection without consuming data the stalling client is
// pretending not to read: MSG_PEEK returns 0 bytes once the server has closed its side.
func tcpClosedByPeer(c net.Conn) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	rc.Read(func(fd uintptr) bool {
		b := make([]byte, 1)
		n, _, err := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil
		return true
	})
	return closed
}
