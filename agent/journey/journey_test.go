package journey

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/flash/target"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/agent/trust"
	"github.com/flashline/flashline/protocol"
)

// fakeAPI is an in-memory line server.
type fakeAPI struct {
	mu         sync.Mutex
	helloErrs  int // fail this many hellos first
	noJobFirst int // answer "wait" this many times first
	job        protocol.Job
	scenario   []byte
	putFails   int // answer 503 this many times first
	results    map[string]protocol.Result
	puts       int
	events     map[int64]protocol.Event
	gotNonce   string
}

func (f *fakeAPI) Hello(ctx context.Context, h protocol.Hello) (*protocol.HelloResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.helloErrs > 0 {
		f.helloErrs--
		return nil, errors.New("dial tcp 10.0.2.2:8080: connection refused")
	}
	if f.noJobFirst > 0 {
		f.noJobFirst--
		return &protocol.HelloResponse{Message: "no rule matches", RetryAfter: 0}, nil
	}
	f.gotNonce = h.Nonce
	j := f.job
	j.Nonce = h.Nonce
	sj, _ := protocol.SignJob(j, nil)
	return &protocol.HelloResponse{Job: &sj, RunSecret: fakeSecret}, nil
}

// fakeSecret is the run secret fakeAPI issues; it refuses writes without it as the server does.
const fakeSecret = "run-secret-of-run-1"

func (f *fakeAPI) PostEvents(ctx context.Context, b protocol.EventBatch) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b.Secret != fakeSecret {
		return 0, &lineclient.StatusError{Code: 401, Message: "no run secret"}
	}
	var m int64
	for _, e := range b.Events {
		if _, ok := f.events[e.Seq]; !ok {
			f.events[e.Seq] = e
		}
		m = max(m, e.Seq)
	}
	return m, nil
}

func (f *fakeAPI) PutResult(ctx context.Context, r protocol.Result) (*protocol.ResultAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	if r.Secret != fakeSecret {
		return nil, &lineclient.StatusError{Code: 401, Message: "no run secret"}
	}
	if f.putFails > 0 {
		f.putFails--
		return nil, &lineclient.StatusError{Code: 503, Message: "restarting"}
	}
	_, dup := f.results[r.RunID]
	if !dup {
		f.results[r.RunID] = r
	}
	return &protocol.ResultAck{Stored: true, Duplicate: dup}, nil
}

func (f *fakeAPI) Fetch(ctx context.Context, ref string, limit int64) ([]byte, error) {
	if ref != f.job.Scenario.URL {
		return nil, errors.New("404")
	}
	return f.scenario, nil
}

func (f *fakeAPI) Resolve(ref string) (string, error) { return "http://line" + ref, nil }

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newFake() *fakeAPI {
	scen := []byte("name: test\nsteps: []\n")
	return &fakeAPI{
		scenario: scen,
		results:  map[string]protocol.Result{},
		events:   map[int64]protocol.Event{},
		job: protocol.Job{
			RunID:    "run-1",
			Device:   protocol.Identity{Serial: "GM1", MAC: "52:54:00:12:34:56"},
			Scenario: protocol.Artifact{URL: "/scenarios/t.yaml", SHA256: sum(scen)},
			Image:    protocol.Artifact{URL: "/images/fw.img.zst", SHA256: "abc", Size: 64 << 20},
			Target:   protocol.Target{Transport: "virtio"},
			After:    protocol.AfterReboot,
		},
	}
}

type recorder struct {
	mu       sync.Mutex
	scenario int
	flashed  []FlashRequest
}

func deps(rec *recorder, steps []protocol.StepResult, flashErr error, verifyErr error) Deps {
	return Deps{
		Inventory: func(ctx context.Context) (protocol.Inventory, error) {
			return protocol.Inventory{DMI: protocol.DMI{Serial: "GM1", Product: "GM-Box"},
				Disks: []protocol.Disk{
					{Name: "sda", Path: "/dev/sda", Transport: "usb", Removable: true, SizeBytes: 8 << 30},
					{Name: "vda", Path: "/dev/vda", Transport: "virtio", SizeBytes: 1 << 30},
				}}, nil
		},
		VerifyJob: func(sj protocol.SignedJob, want trust.Expect) (protocol.Job, error) {
			if verifyErr != nil {
				return protocol.Job{}, verifyErr
			}
			j, err := protocol.OpenJob(sj, nil)
			if err == nil && j.Nonce != want.Nonce {
				err = errors.New("nonce mismatch")
			}
			return j, err
		},
		RunScenario: func(ctx context.Context, scenario []byte, inv protocol.Inventory, emit func(protocol.Event)) ([]protocol.StepResult, error) {
			rec.mu.Lock()
			rec.scenario++
			rec.mu.Unlock()
			for _, s := range steps {
				emit(protocol.Event{Kind: protocol.EventStep, Step: s.Name, Status: s.Status})
			}
			return steps, nil
		},
		Flash: func(ctx context.Context, req FlashRequest) (protocol.FlashResult, error) {
			rec.mu.Lock()
			rec.flashed = append(rec.flashed, req)
			rec.mu.Unlock()
			req.Progress(req.Size/2, req.Size)
			req.Progress(req.Size, req.Size)
			if flashErr != nil {
				return protocol.FlashResult{Target: req.Target}, flashErr
			}
			return protocol.FlashResult{Target: req.Target, Bytes: req.Size, SHA256: req.SHA256}, nil
		},
		After: func(ctx context.Context, action string) error { return nil },
	}
}

func testEnv(out *bytes.Buffer) Env {
	return Env{Console: console.New(out), AgentVersion: "test", BootMAC: "52:54:00:12:34:56",
		HelloMin: time.Millisecond, HelloMax: 5 * time.Millisecond, ReportEvery: time.Millisecond}
}

func f64(v float64) *float64 { return &v }

func TestJourney(t *testing.T) {
	pass := protocol.StepResult{Name: "Wi-Fi sees the line AP", Check: "wifi.scan", Status: protocol.StatusPass, DurationMS: 1200}
	failed := protocol.StepResult{Name: "LTE modem", Check: "lte.modem", Status: protocol.StatusFail, Message: "CSQ 5 below minimum 10",
		Measurements: []protocol.Measurement{{Name: "csq", Value: f64(5)}}}
	tests := []struct {
		name       string
		setup      func(*fakeAPI)
		steps      []protocol.StepResult
		flashErr   error
		verifyErr  error
		wantErr    error
		wantStatus protocol.Status
		wantFailed string
		wantFlash  bool
		wantOnCon  []string
		wantSwarm  *FlashSwarm // nil: the flash request has none (a job without Swarm)
	}{
		{name: "swarm offered", setup: func(f *fakeAPI) {
			f.job.Swarm = &protocol.Swarm{Torrent: "/images/fw.img.zst.torrent", InfoHash: strings.Repeat("ab", 20)}
		}, steps: []protocol.StepResult{pass}, wantStatus: protocol.StatusPass, wantFlash: true,
			wantSwarm: &FlashSwarm{TorrentURL: "http://line/images/fw.img.zst.torrent", InfoHash: strings.Repeat("ab", 20), Linger: DefaultLinger},
			wantOnCon: []string{"through the line's swarm"}},
		{name: "swarm offered, no linger", setup: func(f *fakeAPI) {
			f.job.Swarm = &protocol.Swarm{Torrent: "/t", InfoHash: "x", LingerSeconds: -1}
		}, steps: []protocol.StepResult{pass}, wantStatus: protocol.StatusPass, wantFlash: true,
			wantSwarm: &FlashSwarm{TorrentURL: "http://line/t", InfoHash: "x"}},
		{name: "swarm offered, linger 5 s", setup: func(f *fakeAPI) {
			f.job.Swarm = &protocol.Swarm{Torrent: "/t", InfoHash: "x", LingerSeconds: 5}
		}, steps: []protocol.StepResult{pass}, wantStatus: protocol.StatusPass, wantFlash: true,
			wantSwarm: &FlashSwarm{TorrentURL: "http://line/t", InfoHash: "x", Linger: 5 * time.Second}},
		{name: "pass", steps: []protocol.StepResult{pass}, wantStatus: protocol.StatusPass, wantFlash: true,
			wantOnCon: []string{"PASS", "flashed 64.0 MiB to /dev/vda"}},
		{name: "server away, then no job, then job", setup: func(f *fakeAPI) { f.helloErrs, f.noJobFirst = 2, 2 },
			steps: []protocol.StepResult{pass}, wantStatus: protocol.StatusPass, wantFlash: true,
			wantOnCon: []string{"no answer from the line server: dial tcp", "the line server says: no rule matches"}},
		{name: "failing step is never flashed", steps: []protocol.StepResult{pass, failed},
			wantStatus: protocol.StatusFail, wantFailed: "LTE modem",
			wantOnCon: []string{"FAIL", "step: LTE modem", "CSQ 5 below minimum 10", "measured: csq=5", "NOT flashed"}},
		{name: "scenario swapped after signing", setup: func(f *fakeAPI) { f.scenario = []byte("name: evil\n") },
			wantStatus: protocol.StatusError, wantFailed: "scenario", wantOnCon: []string{"the signed job says", "swapped after signing"}},
		{name: "refused job", verifyErr: errors.New("job signature does not verify"), wantErr: ErrRefused,
			wantOnCon: []string{"JOB REFUSED", "nothing was run and nothing was written"}},
		{name: "flash fails", steps: []protocol.StepResult{pass}, flashErr: errors.New("flash: sha256 mismatch"),
			wantStatus: protocol.StatusFail, wantFailed: "flash", wantFlash: true, wantOnCon: []string{"sha256 mismatch"}},
		{name: "result retried until acknowledged", setup: func(f *fakeAPI) { f.putFails = 3 },
			steps: []protocol.StepResult{pass}, wantStatus: protocol.StatusPass, wantFlash: true,
			wantOnCon: []string{"result: not acknowledged", "result: stored by the server"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFake()
			if tt.setup != nil {
				tt.setup(api)
			}
			rec := &recorder{}
			var con bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := Run(ctx, testEnv(&con), api, deps(rec, tt.steps, tt.flashErr, tt.verifyErr))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if rec.scenario != 0 || len(rec.flashed) != 0 {
					t.Fatalf("refused job still ran %d scenarios and %d flashes", rec.scenario, len(rec.flashed))
				}
				if r, ok := api.results["run-1"]; !ok || r.Status != protocol.StatusError {
					t.Fatalf("refusal not reported: %+v", api.results)
				}
			} else if err != nil {
				t.Fatalf("Run: %v\n%s", err, con.String())
			}
			for _, w := range tt.wantOnCon {
				if !strings.Contains(con.String(), w) {
					t.Errorf("console lacks %q:\n%s", w, con.String())
				}
			}
			if tt.wantErr != nil {
				return
			}
			if (len(rec.flashed) > 0) != tt.wantFlash {
				t.Fatalf("flashed %d times, want flash=%v", len(rec.flashed), tt.wantFlash)
			}
			if tt.wantFlash {
				req := rec.flashed[0]
				if req.Target != "/dev/vda" || req.Source != "http://line/images/fw.img.zst" || req.SHA256 != "abc" || req.Size != 64<<20 {
					t.Fatalf("flash request %+v", req)
				}
				if (req.Swarm == nil) != (tt.wantSwarm == nil) || req.Swarm != nil && *req.Swarm != *tt.wantSwarm {
					t.Fatalf("flash request's swarm %+v, want %+v", req.Swarm, tt.wantSwarm)
				}
			}
			if out.Flashed != (tt.wantStatus == protocol.StatusPass) {
				t.Fatalf("Flashed = %v with status %s", out.Flashed, tt.wantStatus)
			}
			got, ok := api.results["run-1"]
			if !ok {
				t.Fatal("no result stored")
			}
			if got.Status != tt.wantStatus || got.FailedStep != tt.wantFailed {
				t.Fatalf("result %s/%q, want %s/%q (reason %q)", got.Status, got.FailedStep, tt.wantStatus, tt.wantFailed, got.Reason)
			}
			if len(api.results) != 1 {
				t.Fatalf("%d results stored", len(api.results))
			}
			phases := map[string]bool{}
			for _, p := range got.Timings {
				phases[p.Phase] = true
			}
			for _, p := range []string{"hello", "scenario", "report"} {
				if !phases[p] {
					t.Errorf("timing %q missing from %+v", p, got.Timings)
				}
			}
			if phases["inventory"] {
				t.Errorf("the result repeats the hello's timings: %+v", got.Timings)
			}
			// Live events reached the server in order, without gaps.
			for seq := int64(1); seq <= int64(len(api.events)); seq++ {
				if _, ok := api.events[seq]; !ok {
					t.Fatalf("event %d missing of %d", seq, len(api.events))
				}
			}
			if len(api.events) == 0 {
				t.Fatal("no live events")
			}
		})
	}
}

func TestChooseTarget(t *testing.T) {
	disks := []protocol.Disk{
		{Name: "sda", Path: "/dev/sda", Transport: "usb", Removable: true, SizeBytes: 64 << 30},
		{Name: "vda", Transport: "virtio", SizeBytes: 1 << 30},
		{Name: "nvme0n1", Path: "/dev/nvme0n1", Transport: "nvme", SizeBytes: 256 << 30},
	}
	tests := []struct {
		t       protocol.Target
		want    string
		wantErr bool
	}{
		{protocol.Target{Device: "/dev/mmcblk0"}, "/dev/mmcblk0", false},
		{protocol.Target{}, "/dev/vda", false},
		{protocol.Target{MinSize: 2 << 30}, "/dev/nvme0n1", false},
		{protocol.Target{Transport: "usb"}, "", true}, // the removable stick is never chosen by a rule
		{protocol.Target{Transport: "mmc"}, "", true},
	}
	for _, tt := range tests {
		got, err := chooseTarget(tt.t, protocol.Inventory{Disks: disks})
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("chooseTarget(%+v) = %q, %v; want %q", tt.t, got, err, tt.want)
		}
	}
}

// TestTargetMustAppear: a rule's target under /dev that never appears (an eMMC that did not
// probe) fails the flash with a clear reason after the bounded wait, and the flash pipeline is
// never called; a device that appears during the wait is flashed.
func TestTargetMustAppear(t *testing.T) {
	pass := protocol.StepResult{Name: "ok", Check: "noop", Status: protocol.StatusPass}
	t.Run("never appears", func(t *testing.T) {
		dev := t.TempDir() // stands in for /dev
		api := newFake()
		api.job.Target = protocol.Target{Device: filepath.Join(dev, "mmcblk0")}
		rec := &recorder{}
		d := deps(rec, []protocol.StepResult{pass}, nil, nil)
		d.CheckTarget = (&target.Checker{Dev: dev}).CheckDevPath
		var con bytes.Buffer
		env := testEnv(&con)
		env.DeviceWait = 300 * time.Millisecond
		start := time.Now()
		out, err := Run(context.Background(), env, api, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.flashed) != 0 || out.Flashed {
			t.Fatalf("flashed a device that is not there: %+v", rec.flashed)
		}
		got := api.results["run-1"]
		if got.Status != protocol.StatusFail || got.FailedStep != "flash" || !strings.Contains(got.Reason, "did not appear within 300ms") ||
			!strings.Contains(got.Reason, "no such block device") {
			t.Fatalf("result %s/%s %q", got.Status, got.FailedStep, got.Reason)
		}
		if el := time.Since(start); el < 300*time.Millisecond || el > 5*time.Second {
			t.Fatalf("waited %s, want the bounded 300ms", el)
		}
		if _, err := os.Lstat(filepath.Join(dev, "mmcblk0")); err == nil {
			t.Fatal("a file was created in place of the device")
		}
		if !strings.Contains(con.String(), "FAIL") || !strings.Contains(con.String(), "did not appear") {
			t.Fatalf("console:\n%s", con.String())
		}
	})
	t.Run("appears during the wait", func(t *testing.T) {
		api := newFake()
		api.job.Target = protocol.Target{Device: "/dev/mmcblk0"}
		rec := &recorder{}
		d := deps(rec, []protocol.StepResult{pass}, nil, nil)
		var calls int
		d.CheckTarget = func(path string) error {
			if calls++; calls < 3 {
				return fmt.Errorf("target %s: %w", path, target.ErrNoDevice)
			}
			return nil
		}
		var con bytes.Buffer
		out, err := Run(context.Background(), testEnv(&con), api, d)
		if err != nil || !out.Flashed || len(rec.flashed) != 1 || rec.flashed[0].Target != "/dev/mmcblk0" {
			t.Fatalf("run: %v %+v %+v\n%s", err, out.Result, rec.flashed, con.String())
		}
		if !strings.Contains(con.String(), "/dev/mmcblk0 appeared") {
			t.Fatalf("console:\n%s", con.String())
		}
	})
}
