// Package journey runs a device's provisioning once its network is up: inventory, hello to
// the line server, verification of the signed job, the scenario, the flash, the final result
// and the after-action. Every dependency on hardware, trust, scenarios and the flash pipeline
// comes in through Deps, so the whole journey, failures included, is tested with fakes.
//
// The rules it enforces, whatever the parts do:
//   - a job that does not verify is refused: nothing runs, nothing is written;
//   - a device whose scenario does not pass every step is never flashed (with the job's
//     flash.while_testing its image is written beside the scenario, but its first MiB is
//     committed only after every step passed; otherwise the partition tables are wiped);
//   - the final result is retried until the server acknowledges it (it is idempotent by run id);
//   - the console always ends with a large PASS or FAIL that names the failed step and why.
package journey

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/journey/internal/report"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/agent/netquiet"
	"github.com/flashline/flashline/agent/trust"
	"github.com/flashline/flashline/internal/human"
	"github.com/flashline/flashline/protocol"
)

// maxScenarioBytes bounds a scenario download; real scenarios are a few KiB.
const maxScenarioBytes = 1 << 20

// API is the line server as the journey uses it; *lineclient.Client implements it.
type API interface {
	Hello(ctx context.Context, h protocol.Hello) (*protocol.HelloResponse, error)
	PostEvents(ctx context.Context, b protocol.EventBatch) (int64, error)
	PutResult(ctx context.Context, r protocol.Result) (*protocol.ResultAck, error)
	Fetch(ctx context.Context, ref string, limit int64) ([]byte, error)
	Resolve(ref string) (string, error)
}

// FlashRequest is what the journey asks the flash pipeline to do.
type FlashRequest struct {
	Source   string // absolute image URL
	Target   string // block device path
	SHA256   string
	Size     int64
	Options  protocol.FlashOptions
	Progress func(done, total int64)
	// BmapURL (absolute) and BmapSHA256 name the image's block map, when the job has one.
	BmapURL, BmapSHA256 string
	// Hold and Commit are set for a flash while testing (flash.Options.Hold and Commit):
	// Hold, called before each read of the image, blocks while a step times the network;
	// Commit blocks until the scenario's verdict and fails when a step failed, so that the
	// first MiB is written only after every step passed.
	Hold, Commit func(ctx context.Context) error
	// Swarm, when the job offers the image in the line's BitTorrent swarm, says where its
	// metainfo is (TorrentURL, absolute) and which infohash it must have; Linger is how long
	// to seed after the flash is verified (0: none).
	Swarm *FlashSwarm
}

// FlashSwarm is the swarm part of a FlashRequest.
type FlashSwarm struct {
	TorrentURL string
	InfoHash   string
	Linger     time.Duration
}

// DefaultLinger is the seeding time after a verified flash when the job does not say.
const DefaultLinger = 60 * time.Second

// swarmRequest turns a job's swarm offer into the flash's; nil for a job without one.
func swarmRequest(api API, sw *protocol.Swarm) (*FlashSwarm, error) {
	if sw == nil || sw.Torrent == "" {
		return nil, nil
	}
	u, err := api.Resolve(sw.Torrent)
	if err != nil {
		return nil, err
	}
	linger := DefaultLinger
	switch {
	case sw.LingerSeconds < 0:
		linger = 0
	case sw.LingerSeconds > 0:
		linger = time.Duration(sw.LingerSeconds) * time.Second
	}
	return &FlashSwarm{TorrentURL: u, InfoHash: sw.InfoHash, Linger: linger}, nil
}

// Deps are the journey's parts.
type Deps struct {
	// Inventory describes the hardware.
	Inventory func(ctx context.Context) (protocol.Inventory, error)
	// VerifyJob checks the job's signature and that it is bound to want.
	VerifyJob func(sj protocol.SignedJob, want trust.Expect) (protocol.Job, error)
	// RunScenario runs the scenario's steps, emitting step events as they happen. It returns
	// every step's result; an error means the scenario could not be run at all.
	RunScenario func(ctx context.Context, scenario []byte, inv protocol.Inventory, emit func(protocol.Event)) ([]protocol.StepResult, error)
	// Flash writes the image.
	Flash func(ctx context.Context, req FlashRequest) (protocol.FlashResult, error)
	// After carries out the job's after-action (reboot, poweroff...).
	After func(ctx context.Context, action string) error
	// Network, when set, is the gate the scenario runner holds quiet while a step times the
	// network (the caller gives the same gate to its scenario.Runner); a flash while testing
	// waits on it before each read of the image.
	Network *netquiet.Gate
	// CheckTarget, when set, says whether the chosen flash target can be written now (a
	// path under /dev must be an existing block device). The journey retries it for
	// Env.DeviceWait, since a disk's driver may still be probing, and fails the flash with
	// its reason when the device does not appear.
	CheckTarget func(path string) error
	// LLDP, when set, listens on the boot NIC for its switch's LLDP (lineview.go).
	LLDP func(ctx context.Context) (protocol.LLDPNeighbor, error)
}

// Env is what the boot part of the agent found out.
type Env struct {
	Console      *console.Console
	Log          *slog.Logger
	AgentVersion string
	// Server names the line server in console messages.
	Server  string
	BootMAC string
	IP      string
	// BootTimings are phases measured before the journey (kernel, modules, dhcp...).
	BootTimings []protocol.PhaseTiming
	// HelloBackoff bounds the wait between hellos when the server is away or has no job.
	HelloMin, HelloMax time.Duration
	// ReportEvery is how often live events are flushed.
	ReportEvery time.Duration
	// DeviceWait bounds the wait for the job's target device to appear (default
	// DefaultDeviceWait).
	DeviceWait time.Duration
	// Now is the clock (tests fix it).
	Now func() time.Time
	// Summary, when set, is shown after the final banner (the operator console's large
	// PASS/FAIL letters). The scenario's own summary must not be shown earlier: a device whose
	// tests passed has not passed until its flash is verified.
	Summary func(res protocol.Result)
	// LLDPWait bounds the wait for LLDP from the journey's start (default DefaultLLDPWait).
	LLDPWait time.Duration
}

func (e *Env) defaults() {
	if e.Console == nil {
		e.Console = console.Discard()
	}
	if e.Log == nil {
		e.Log = slog.Default()
	}
	if e.HelloMin == 0 {
		e.HelloMin = time.Second
	}
	if e.HelloMax == 0 {
		e.HelloMax = 30 * time.Second
	}
	if e.ReportEvery == 0 {
		e.ReportEvery = 500 * time.Millisecond
	}
	if e.DeviceWait == 0 {
		e.DeviceWait = DefaultDeviceWait
	}
	if e.Now == nil {
		e.Now = time.Now
	}
}

// Outcome is how a run ended.
type Outcome struct {
	Job    protocol.Job
	Result protocol.Result
	// Flashed is true when the image was written and verified.
	Flashed bool
}

// DefaultDeviceWait is how long the journey waits for the target disk to appear. Module
// loading and the scenario normally leave any disk minutes to show up; an eMMC or NVMe that is
// not there 30 s after the scenario ended is missing or broken, and the device must fail
// rather than "flash" into a file in RAM.
const DefaultDeviceWait = 30 * time.Second

// ErrRefused wraps every reason a job was not accepted.
var ErrRefused = errors.New("job refused")

// Run does one whole journey. It returns when the result has been acknowledged by the server
// (or ctx ends). It does not carry out the after-action: call Finish for that, so the caller
// decides what to do on failure (a failed device stays on its FAIL screen).
func Run(ctx context.Context, env Env, api API, deps Deps) (Outcome, error) {
	env.defaults()
	con := env.Console
	var timings []protocol.PhaseTiming
	timings = append(timings, env.BootTimings...)
	phase := func(name string, start time.Time) {
		timings = append(timings, protocol.PhaseTiming{Phase: name, DurationMS: env.Now().Sub(start).Milliseconds()})
	}

	lldp := listenLLDP(ctx, env, deps)
	t0 := env.Now()
	con.Infof("inventory: reading the hardware")
	inv, err := deps.Inventory(ctx)
	if err != nil {
		// A partial inventory is still worth sending: the server may know the device by MAC.
		con.Warnf("inventory: %v", err)
	}
	phase("inventory", t0)
	con.OKf("inventory: %s", describe(inv))

	nonce := newNonce()
	hello := protocol.Hello{AgentVersion: env.AgentVersion, BootMAC: env.BootMAC, IP: env.IP, Nonce: nonce, Inventory: inv, Timings: timings}
	_, hello.Heartbeat = api.(Heartbeater)
	hello.LLDP = lldp()
	invHash, err := protocol.InventoryHash(inv)
	if err != nil {
		return Outcome{}, err
	}
	// What went with the hello is stored with the run already: the result carries the rest.
	timings = nil
	t0 = env.Now()
	resp, err := helloUntilJob(ctx, env, api, hello)
	if err != nil {
		return Outcome{}, err
	}
	sj, secret := resp.Job, resp.RunSecret
	phase("hello", t0)

	job, err := deps.VerifyJob(*sj, trust.Expect{Serial: inv.DMI.Serial, MAC: env.BootMAC, Nonce: nonce, Now: env.Now(), InventorySHA256: invHash})
	if err != nil {
		err = fmt.Errorf("%w: %v", ErrRefused, err)
		con.Banner(console.Fail, "FAIL: JOB REFUSED", human.OneLine(err.Error()), "nothing was run and nothing was written")
		// Tell whoever sent it, once: a rogue server learns nothing it did not know.
		if runID := unverifiedRunID(*sj); runID != "" {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, _ = api.PutResult(rctx, protocol.Result{RunID: runID, Serial: inv.DMI.Serial, MAC: env.BootMAC,
				Status: protocol.StatusError, Reason: human.OneLine(err.Error()), Finished: env.Now(), Secret: secret})
			cancel()
		}
		return Outcome{}, err
	}
	con.OKf("job %s: scenario %s, image %s (%s)", job.RunID, nameOf(job.Scenario), nameOf(job.Image), human.Bytes(job.Image.Size))

	rep := report.NewAuthenticated(api, job.RunID, inv.DMI.Serial, secret, env.ReportEvery, env.Log)
	stopHeartbeats := heartbeats(ctx, env, api, resp, job)
	res := protocol.Result{RunID: job.RunID, Serial: inv.DMI.Serial, MAC: env.BootMAC, Secret: secret}
	out := Outcome{Job: job}
	emitPhase := func(name string, st protocol.Status, msg string) {
		rep.Emit(protocol.Event{Kind: protocol.EventPhase, Phase: name, Status: st, Message: msg})
	}

	fail := func(step, reason string, st protocol.Status) {
		res.Status = st
		res.FailedStep = step
		res.Reason = human.OneLine(reason)
	}

	// With flash.while_testing the image is written beside the scenario, committed after it.
	var early *earlyFlash
	if job.Flash.WhileTesting {
		early = startEarlyFlash(ctx, env, api, deps, job, inv, rep)
	}

	// The scenario, verified against the hash in the signed job before it is parsed.
	t0 = env.Now()
	emitPhase("scenario", protocol.StatusRunning, "")
	scenario, err := fetchVerified(ctx, api, job.Scenario)
	if err != nil {
		fail("scenario", err.Error(), protocol.StatusError)
	} else {
		steps, err := deps.RunScenario(ctx, scenario, inv, rep.Emit)
		res.Steps = steps
		for _, s := range steps {
			timings = append(timings, protocol.PhaseTiming{Phase: "step:" + s.Name, DurationMS: s.DurationMS})
		}
		switch {
		case err != nil:
			fail("scenario", "scenario: "+err.Error(), protocol.StatusError)
		default:
			if s, ok := firstFailed(steps); ok {
				fail(s.Name, stepReason(s), protocol.StatusFail)
			}
		}
	}
	phase("scenario", t0)
	emitPhase("scenario", statusOr(res.Status, protocol.StatusPass), res.Reason)

	if early != nil {
		// Committed only when every step passed; otherwise stopped and wiped.
		t1 := env.Now()
		fr, err := early.finish(env, res.FailedStep)
		res.Flash = &fr
		if res.Status == "" {
			if err != nil {
				fail("flash", err.Error(), protocol.StatusFail)
			} else {
				out.Flashed = true
			}
		}
		// flash is the whole flash, from beside the scenario's start; flash_after_scenario
		// what it added to the device's time on the station.
		phase("flash", early.start)
		phase("flash_after_scenario", t1)
		emitPhase("flash", statusOr(res.Status, protocol.StatusPass), res.Reason)
	} else if res.Status == "" {
		// The flash, only when every step passed.
		t0 = env.Now()
		emitPhase("flash", protocol.StatusRunning, "")
		fr, err := flash(ctx, env, api, deps, job, inv, rep, flashHooks{})
		res.Flash = &fr
		if err != nil {
			fail("flash", err.Error(), protocol.StatusFail)
		} else {
			out.Flashed = true
		}
		phase("flash", t0)
		emitPhase("flash", statusOr(res.Status, protocol.StatusPass), res.Reason)
	}
	if res.Status == "" {
		res.Status = protocol.StatusPass
	}

	// Report: live events first (best effort, bounded), then the result until acknowledged.
	stopHeartbeats()
	t0 = env.Now()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if left := rep.Close(cctx); left > 0 {
		con.Warnf("report: %d live events could not be delivered", left)
	}
	cancel()
	res.Finished = env.Now()
	res.Timings = append(timings, protocol.PhaseTiming{Phase: "report", DurationMS: env.Now().Sub(t0).Milliseconds()})
	err = putResult(ctx, env, api, res)
	banner(con, res)
	if env.Summary != nil {
		env.Summary(res)
	}
	if err != nil {
		return out, err
	}
	out.Result = res
	return out, nil
}

// Finish carries out the job's after-action for a passed run. A failed device is left on its
// FAIL screen (rebooting it would only run the same failing tests again); ctx ending releases it.
func Finish(ctx context.Context, env Env, deps Deps, out Outcome) error {
	env.defaults()
	if out.Result.Status != protocol.StatusPass {
		env.Console.Infof("the device stays here: fix it and power-cycle it to test again")
		<-ctx.Done()
		return ctx.Err()
	}
	action := out.Job.After
	if action == "" {
		action = protocol.AfterReboot
	}
	env.Console.Infof("after: %s", action)
	if action == protocol.AfterNone {
		return nil
	}
	return deps.After(ctx, action)
}

func helloUntilJob(ctx context.Context, env Env, api API, h protocol.Hello) (*protocol.HelloResponse, error) {
	b := lineclient.Backoff{Min: env.HelloMin, Max: env.HelloMax}
	con := env.Console
	server := env.Server
	if server == "" {
		server = "the line server"
	}
	con.Infof("hello to %s", server)
	for attempt := 1; ; attempt++ {
		resp, err := api.Hello(ctx, h)
		var wait time.Duration
		switch {
		case err != nil:
			wait = b.Next()
			con.Warnf("no answer from %s: %v; retrying in %s", server, human.OneLine(err.Error()), roundWait(wait))
		case resp.Job != nil:
			con.OKf("job received from %s (%d bytes, signed: %v)", server, len(resp.Job.Job), len(resp.Job.Signature) > 0)
			return resp, nil
		default:
			b.Reset()
			wait = time.Duration(resp.RetryAfter) * time.Second
			if wait <= 0 {
				wait = b.Next()
			}
			msg := resp.Message
			if msg == "" {
				msg = "no job for this device yet"
			}
			con.Warnf("%s says: %s; asking again in %s", server, msg, roundWait(wait))
		}
		if err := lineclient.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("hello to %s: gave up after %d attempts: %w", server, attempt, err)
		}
	}
}

func roundWait(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

func fetchVerified(ctx context.Context, api API, a protocol.Artifact) ([]byte, error) {
	b, err := api.Fetch(ctx, a.URL, maxScenarioBytes)
	if err != nil {
		return nil, err
	}
	// Before parsing: a parser must never see content the operator did not sign.
	if err := trust.VerifyBytes("scenario", b, a); err != nil {
		return nil, err
	}
	return b, nil
}

// flashHooks are a flash while testing's FlashRequest.Hold and Commit; zero for a flash after
// the scenario.
type flashHooks struct {
	hold, commit func(ctx context.Context) error
}

func flash(ctx context.Context, env Env, api API, deps Deps, job protocol.Job, inv protocol.Inventory, rep *report.Reporter, hooks flashHooks) (protocol.FlashResult, error) {
	con := env.Console
	target, err := chooseTarget(job.Target, inv)
	if err != nil {
		return protocol.FlashResult{}, err
	}
	if err := waitTarget(ctx, env, deps, target); err != nil {
		return protocol.FlashResult{Target: target}, err
	}
	src, err := api.Resolve(job.Image.URL)
	if err != nil {
		return protocol.FlashResult{Target: target}, err
	}
	con.Infof("flash: %s -> %s (%s)", src, target, human.Bytes(job.Image.Size))
	var bmapURL, bmapSum string
	if job.Bmap != nil {
		if bmapURL, err = api.Resolve(job.Bmap.URL); err != nil {
			return protocol.FlashResult{Target: target}, err
		}
		bmapSum = job.Bmap.SHA256
		con.Infof("flash: only the blocks mapped by %s", bmapURL)
	}
	sw, err := swarmRequest(api, job.Swarm)
	if err != nil {
		return protocol.FlashResult{Target: target}, err
	}
	if sw != nil {
		con.Infof("flash: through the line's swarm (%s), seeding %s after", sw.TorrentURL, sw.Linger)
	}
	var lastPct int64 = -1
	fr, err := deps.Flash(ctx, FlashRequest{
		Source: src, Target: target, SHA256: job.Image.SHA256, Size: job.Image.Size, Options: job.Flash,
		BmapURL: bmapURL, BmapSHA256: bmapSum, Swarm: sw,
		Hold: hooks.hold, Commit: hooks.commit,
		Progress: func(done, total int64) {
			rep.Emit(protocol.Event{Kind: protocol.EventProgress, Phase: "flash", Done: done, Total: total})
			if total > 0 {
				// A line per 10% keeps a serial console readable.
				if pct := done * 10 / total; pct != lastPct {
					lastPct = pct
					con.Infof("flash: %3d%% %s of %s", pct*10, human.Bytes(done), human.Bytes(total))
				}
			}
		},
	})
	if fr.Target == "" {
		fr.Target = target
	}
	if err != nil {
		if ctx.Err() == nil {
			// A flash while testing stopped because a step failed is not a flash failure.
			con.Failf("flash: %v", human.OneLine(err.Error()))
		}
		return fr, err
	}
	con.OKf("flash: %s written and verified (sha256 %s) in %.1fs", human.Bytes(fr.Bytes), short(fr.SHA256), float64(fr.DurationMS)/1000)
	return fr, nil
}

// waitTarget waits up to env.DeviceWait for deps.CheckTarget to accept target.
func waitTarget(ctx context.Context, env Env, deps Deps, target string) error {
	if deps.CheckTarget == nil {
		return nil
	}
	err := deps.CheckTarget(target)
	if err == nil {
		return nil
	}
	env.Console.Warnf("flash: waiting up to %s for %s: %v", env.DeviceWait, target, human.OneLine(err.Error()))
	start := env.Now()
	for {
		if serr := lineclient.Sleep(ctx, 250*time.Millisecond); serr != nil {
			return fmt.Errorf("waiting for target %s: %w", target, serr)
		}
		if err = deps.CheckTarget(target); err == nil {
			env.Console.OKf("flash: %s appeared", target)
			return nil
		}
		if env.Now().Sub(start) >= env.DeviceWait {
			return fmt.Errorf("target %s did not appear within %s: %w", target, env.DeviceWait, err)
		}
	}
}

// chooseTarget picks the disk to flash: the job's explicit device, or the first non-removable
// disk matching the rule. A removable disk is never chosen by a rule: it may be the boot stick.
func chooseTarget(t protocol.Target, inv protocol.Inventory) (string, error) {
	if t.Device != "" {
		return t.Device, nil
	}
	for _, d := range inv.Disks {
		if d.Removable || d.ReadOnly {
			continue
		}
		if t.Transport != "" && !strings.EqualFold(t.Transport, d.Transport) {
			continue
		}
		if d.SizeBytes < t.MinSize {
			continue
		}
		if d.Path == "" {
			d.Path = "/dev/" + d.Name
		}
		return d.Path, nil
	}
	return "", fmt.Errorf("no disk matches the job's target (transport %q, min size %s) among %d disks", t.Transport, human.Bytes(t.MinSize), len(inv.Disks))
}

func putResult(ctx context.Context, env Env, api API, res protocol.Result) error {
	b := lineclient.Backoff{Min: env.HelloMin, Max: env.HelloMax}
	for {
		ack, err := api.PutResult(ctx, res)
		if err == nil {
			if ack.Duplicate {
				env.Console.OKf("result: already stored by the server")
			} else {
				env.Console.OKf("result: stored by the server")
			}
			return nil
		}
		var se *lineclient.StatusError
		if errors.As(err, &se) && !se.Temporary() {
			env.Console.Failf("result: the server refused it: %v", err)
			return fmt.Errorf("report result: %w", err)
		}
		wait := b.Next()
		env.Console.Warnf("result: not acknowledged (%v); retrying in %s", human.OneLine(err.Error()), wait.Round(100*time.Millisecond))
		if err := lineclient.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("report result: %w", err)
		}
	}
}

func banner(con *console.Console, res protocol.Result) {
	if res.Status == protocol.StatusPass {
		lines := []string{"PASS", fmt.Sprintf("%d steps passed", len(res.Steps))}
		if res.Flash != nil {
			lines = append(lines, fmt.Sprintf("flashed %s to %s", human.Bytes(res.Flash.Bytes), res.Flash.Target))
		}
		con.Banner(console.OK, lines...)
		return
	}
	lines := []string{"FAIL", "step: " + res.FailedStep, "why:  " + res.Reason}
	for _, s := range res.Steps {
		if s.Name == res.FailedStep && len(s.Measurements) > 0 {
			lines = append(lines, "measured: "+measurements(s.Measurements))
		}
	}
	lines = append(lines, "the device was NOT flashed", "run "+res.RunID)
	if res.FailedStep == "flash" {
		lines[len(lines)-2] = "the flash did not complete: the disk was left unbootable on purpose"
	} else if res.Flash != nil {
		lines[len(lines)-2] = "the device was NOT flashed: what was written while testing was wiped"
	}
	con.Banner(console.Fail, lines...)
}

func firstFailed(steps []protocol.StepResult) (protocol.StepResult, bool) {
	for _, s := range steps {
		if s.Status == protocol.StatusFail || s.Status == protocol.StatusError {
			return s, true
		}
	}
	return protocol.StepResult{}, false
}

func stepReason(s protocol.StepResult) string {
	r := s.Message
	if r == "" {
		r = string(s.Status)
	}
	if len(s.Measurements) > 0 {
		r += " (measured " + measurements(s.Measurements) + ")"
	}
	return r
}

func measurements(ms []protocol.Measurement) string {
	var parts []string
	for _, m := range ms {
		v := m.Text
		if m.Value != nil {
			v = fmt.Sprintf("%g", *m.Value)
		}
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("%s=%s %s", m.Name, v, m.Unit)))
	}
	return strings.Join(parts, ", ")
}

func statusOr(s, def protocol.Status) protocol.Status {
	if s == "" {
		return def
	}
	return s
}

func unverifiedRunID(sj protocol.SignedJob) string {
	j, err := protocol.OpenJob(sj, nil)
	if err != nil {
		return ""
	}
	return j.RunID
}

func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux (it panics instead).
	return hex.EncodeToString(b)
}

func describe(inv protocol.Inventory) string {
	s := fmt.Sprintf("%s %s serial %q, %d cores, %s RAM, %d disks, %d NICs", inv.DMI.Vendor, inv.DMI.Product, inv.DMI.Serial, inv.CPU.Cores, human.Bytes(int64(inv.MemoryBytes)), len(inv.Disks), len(inv.NICs))
	if len(inv.Modules) > 0 {
		s += ", modules " + strings.Join(inv.Modules, ",")
	}
	return strings.TrimSpace(s)
}

func nameOf(a protocol.Artifact) string {
	if a.Name != "" {
		return a.Name
	}
	return a.URL
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
