package journey

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flashpkg "github.com/flashline/flashline/agent/flash"
	"github.com/flashline/flashline/agent/netquiet"
	"github.com/flashline/flashline/protocol"
)

// wtImage is an image that is not all zeros anywhere (so no block is skipped), seeded.
func wtImage(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32()) | 1
	}
	return b
}

// wtLine is a line server for flash-while-testing runs: the fake API, an HTTP server for the
// image, and a target file holding an old image (0xee) that the flash must replace or wipe.
type wtLine struct {
	api    *fakeAPI
	img    []byte
	target string
	srv    *httptest.Server
	// stall, when set, makes the image handler send this many bytes and then block until
	// the client goes away (which stopped is then closed for).
	stall   int64
	sent    chan struct{} // closed once stall bytes were sent
	stopped chan struct{}
	written atomic.Int64 // image bytes the flash has handled
}

func newWTLine(t *testing.T, size int, stall int64) *wtLine {
	t.Helper()
	l := &wtLine{api: newFake(), img: wtImage(size, uint64(size)), stall: stall, sent: make(chan struct{}), stopped: make(chan struct{})}
	l.target = filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(l.target, bytes.Repeat([]byte{0xee}, size+(1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.stall <= 0 {
			http.ServeContent(w, r, "fw.img", time.Time{}, bytes.NewReader(l.img))
			return
		}
		if l.stall >= int64(len(l.img)) {
			// Slowly: 256 KiB every 10 ms.
			w.Header().Set("Content-Length", fmt.Sprint(len(l.img)))
			for off := 0; off < len(l.img); off += 256 << 10 {
				if _, err := w.Write(l.img[off:min(off+256<<10, len(l.img))]); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(l.img)))
		_, _ = w.Write(l.img[:l.stall])
		w.(http.Flusher).Flush()
		close(l.sent)
		<-r.Context().Done()
		close(l.stopped)
	}))
	t.Cleanup(l.srv.Close)
	l.api.job.Image = protocol.Artifact{URL: "/images/fw.img", SHA256: sum(l.img), Size: int64(size)}
	l.api.job.Target = protocol.Target{Device: l.target}
	l.api.job.Flash.WhileTesting = true
	return l
}

// deps returns journey parts whose flash is the real pipeline (as the agent wires it) and
// whose scenario is the given function.
func (l *wtLine) deps(gate *netquiet.Gate, holds *holdLog, scenario func(ctx context.Context) []protocol.StepResult) Deps {
	rec := &recorder{}
	d := deps(rec, nil, nil, nil)
	d.Network = gate
	d.RunScenario = func(ctx context.Context, _ []byte, _ protocol.Inventory, emit func(protocol.Event)) ([]protocol.StepResult, error) {
		steps := scenario(ctx)
		for _, s := range steps {
			emit(protocol.Event{Kind: protocol.EventStep, Step: s.Name, Status: s.Status})
		}
		return steps, nil
	}
	d.Flash = func(ctx context.Context, req FlashRequest) (protocol.FlashResult, error) {
		if req.Commit == nil || (gate != nil) != (req.Hold != nil) {
			return protocol.FlashResult{}, fmt.Errorf("a flash while testing without Commit, or Hold without a network gate")
		}
		hold := req.Hold
		if holds != nil {
			hold = func(ctx context.Context) error {
				err := req.Hold(ctx)
				holds.record(gate.Quieted())
				return err
			}
		}
		res, err := flashpkg.Write(ctx, flashpkg.Options{
			Source: strings.Replace(req.Source, "http://line", l.srv.URL, 1), Target: req.Target, SHA256: req.SHA256, Size: req.Size,
			BufferSize: 1 << 20, Buffers: 2, Hold: hold, Commit: req.Commit, Retries: -1,
			Progress: func(p flashpkg.Progress) { l.written.Store(p.Written); req.Progress(p.Written, p.Total) }, ProgressInterval: time.Millisecond,
		})
		return protocol.FlashResult{Target: req.Target, Bytes: res.Bytes, SHA256: res.SHA256, DurationMS: res.Duration.Milliseconds()}, err
	}
	return d
}

// holdLog records, for every read of the image the flash was let through to, whether the
// network was quiet at that moment.
type holdLog struct {
	mu        sync.Mutex
	reads     int
	duringNet int
}

func (h *holdLog) record(quiet bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads++
	if quiet {
		h.duringNet++
	}
}

func (l *wtLine) head(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(l.target)
	if err != nil {
		t.Fatal(err)
	}
	return b[:flashpkg.HoldBack]
}

func run(t *testing.T, l *wtLine, d Deps) (Outcome, string) {
	t.Helper()
	var con bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := Run(ctx, testEnv(&con), l.api, d)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, con.String())
	}
	if t.Failed() {
		t.Logf("console:\n%s", con.String())
	}
	return out, con.String()
}

func timing(r protocol.Result, phase string) (int64, bool) {
	for _, p := range r.Timings {
		if p.Phase == phase {
			return p.DurationMS, true
		}
	}
	return 0, false
}

// TestFlashWhileTesting: with flash.while_testing the image is written while the scenario
// runs and committed only after every step passed; a failing step, whether the download is
// still running or already done, stops it and leaves no partition table; an image that does
// not verify fails the device as "flash" even though every step passed.
func TestFlashWhileTesting(t *testing.T) {
	okStep := protocol.StepResult{Name: "Wi-Fi sees the line AP", Check: "wifi.scan", Status: protocol.StatusPass}
	badStep := protocol.StepResult{Name: "LTE signal strong enough", Check: "lte.modem", Status: protocol.StatusFail, Message: "csq 5 below 10"}
	zeros := make([]byte, flashpkg.HoldBack)

	t.Run("pass: written during the scenario, committed after it", func(t *testing.T) {
		l := newWTLine(t, 6<<20, 0)
		var headDuring []byte
		var committedDuring atomic.Bool
		d := l.deps(nil, nil, func(ctx context.Context) []protocol.StepResult {
			// The steps take until the image is written (all but its first MiB).
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				b, _ := os.ReadFile(l.target)
				if bytes.Equal(b[flashpkg.HoldBack:len(l.img)], l.img[flashpkg.HoldBack:]) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			headDuring = l.head(t)
			committedDuring.Store(bytes.Equal(headDuring, l.img[:flashpkg.HoldBack]))
			return []protocol.StepResult{okStep}
		})
		out, con := run(t, l, d)
		if !out.Flashed || committedDuring.Load() {
			t.Fatalf("flashed %v, first MiB committed during the scenario %v\n%s", out.Flashed, committedDuring.Load(), con)
		}
		if !bytes.Equal(headDuring, zeros) {
			t.Error("the old partition table was still there while the image was written")
		}
		b, _ := os.ReadFile(l.target)
		if !bytes.Equal(b[:len(l.img)], l.img) {
			t.Fatal("the committed image differs")
		}
		got := l.api.results["run-1"]
		if got.Status != protocol.StatusPass || got.Flash == nil || got.Flash.Bytes != int64(len(l.img)) {
			t.Fatalf("result %s %+v", got.Status, got.Flash)
		}
		if _, ok := timing(got, "flash"); !ok {
			t.Errorf("no flash timing: %+v", got.Timings)
		}
		if _, ok := timing(got, "flash_after_scenario"); !ok {
			t.Errorf("no flash_after_scenario timing: %+v", got.Timings)
		}
		if !strings.Contains(con, "waiting for the tests before committing") || !strings.Contains(con, "PASS") {
			t.Errorf("console:\n%s", con)
		}
	})

	t.Run("a step fails mid-download: the download stops, the disk is wiped", func(t *testing.T) {
		l := newWTLine(t, 8<<20, 3<<20)
		d := l.deps(nil, nil, func(ctx context.Context) []protocol.StepResult {
			// The step fails once the flash is writing (the disk's old table is gone then).
			select {
			case <-l.sent:
			case <-time.After(5 * time.Second):
				t.Error("the image download did not start during the scenario")
			}
			for i := 0; i < 1000 && l.written.Load() < 1<<20; i++ {
				time.Sleep(5 * time.Millisecond)
			}
			return []protocol.StepResult{okStep, badStep}
		})
		start := time.Now()
		out, con := run(t, l, d)
		select {
		case <-l.stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("the image download went on after the step failed")
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("the failed run took %s", el)
		}
		got := l.api.results["run-1"]
		if out.Flashed || got.Status != protocol.StatusFail || got.FailedStep != badStep.Name || !strings.Contains(got.Reason, "csq 5") {
			t.Fatalf("flashed %v, result %s/%q %q", out.Flashed, got.Status, got.FailedStep, got.Reason)
		}
		if !bytes.Equal(l.head(t), zeros) {
			t.Fatal("first MiB not wiped after a failed step")
		}
		for _, w := range []string{"stopped and wiped", "step: " + badStep.Name, "written while testing was wiped"} {
			if !strings.Contains(con, w) {
				t.Errorf("console lacks %q:\n%s", w, con)
			}
		}
		if strings.Contains(con, "flash: FAIL") || strings.Contains(con, "FAIL flash:") {
			t.Errorf("the stop was reported as a flash failure:\n%s", con)
		}
	})

	t.Run("a step fails after the download: not committed, wiped", func(t *testing.T) {
		l := newWTLine(t, 4<<20, 0)
		d := l.deps(nil, nil, func(ctx context.Context) []protocol.StepResult {
			for i := 0; i < 2000; i++ {
				b, _ := os.ReadFile(l.target)
				if bytes.Equal(b[flashpkg.HoldBack:len(l.img)], l.img[flashpkg.HoldBack:]) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			return []protocol.StepResult{badStep}
		})
		out, _ := run(t, l, d)
		got := l.api.results["run-1"]
		if out.Flashed || got.FailedStep != badStep.Name {
			t.Fatalf("flashed %v, failed step %q", out.Flashed, got.FailedStep)
		}
		b, _ := os.ReadFile(l.target)
		if !bytes.Equal(b[:flashpkg.HoldBack], zeros) || !bytes.Equal(b[flashpkg.HoldBack:len(l.img)], l.img[flashpkg.HoldBack:]) {
			t.Fatal("want the image written but its first MiB wiped")
		}
	})

	t.Run("the image does not verify: flash fails although the steps pass", func(t *testing.T) {
		l := newWTLine(t, 4<<20, 0)
		l.api.job.Image.SHA256 = sum([]byte("another image"))
		d := l.deps(nil, nil, func(ctx context.Context) []protocol.StepResult {
			time.Sleep(300 * time.Millisecond)
			return []protocol.StepResult{okStep}
		})
		out, con := run(t, l, d)
		got := l.api.results["run-1"]
		if out.Flashed || got.Status != protocol.StatusFail || got.FailedStep != "flash" || !strings.Contains(got.Reason, "sha256 mismatch") {
			t.Fatalf("flashed %v, result %s/%q %q\n%s", out.Flashed, got.Status, got.FailedStep, got.Reason, con)
		}
		if !bytes.Equal(l.head(t), zeros) {
			t.Fatal("first MiB not wiped after a hash mismatch")
		}
	})

	t.Run("the download pauses while a step times the network", func(t *testing.T) {
		l := newWTLine(t, 16<<20, 16<<20) // about 0.7 s to download
		gate := netquiet.New()
		holds := &holdLog{}
		var readsQuiet atomic.Int64
		d := l.deps(gate, holds, func(ctx context.Context) []protocol.StepResult {
			// First a step beside the download, then a throughput test that keeps the
			// network quiet for 300 ms (as the scenario runner does for wifi.throughput).
			for holds.count() < 2 {
				time.Sleep(time.Millisecond)
			}
			release := gate.Quiet()
			time.Sleep(30 * time.Millisecond) // a read let through just before may still end
			before := holds.count()
			time.Sleep(300 * time.Millisecond)
			readsQuiet.Store(int64(holds.count() - before))
			release()
			return []protocol.StepResult{okStep, {Name: "Wi-Fi throughput", Check: "wifi.throughput", Status: protocol.StatusPass}}
		})
		out, con := run(t, l, d)
		if !out.Flashed {
			t.Fatalf("not flashed:\n%s", con)
		}
		if n := readsQuiet.Load(); n != 0 {
			t.Errorf("%d image reads started while a step timed the network (of %d)", n, holds.count())
		}
		if gate.Waits() == 0 {
			t.Error("the flash never waited for the network step")
		}
	})
}

func (h *holdLog) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reads
}
