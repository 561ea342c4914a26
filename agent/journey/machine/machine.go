// Package machine runs the journey on this machine: it wires agent/journey's Deps to the real
// inventory, the trust policy built into the initramfs, the scenario runner with every check
// kind, the flash pipeline and the kernel's power control, and holds the process to the flash
// pipeline's memory budget. agent/journey itself only sees the Deps, and is tested with fakes.
package machine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/flashline/flashline/agent/bootstrap"
	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/flash"
	"github.com/flashline/flashline/agent/flash/target"
	"github.com/flashline/flashline/agent/inventory"
	"github.com/flashline/flashline/agent/journey"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/agent/lldp"
	"github.com/flashline/flashline/agent/membudget"
	"github.com/flashline/flashline/agent/netquiet"
	"github.com/flashline/flashline/agent/operator"
	"github.com/flashline/flashline/agent/power"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/agent/trust"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/protocol/bmap"
)

// trustRoot is where the initramfs keeps the operator's public key and pinned CA.
const trustRoot = "/"

// Run runs the journey once on this machine after bootstrap.Boot, and carries out the
// after-action.
func Run(ctx context.Context, env *bootstrap.Env) error {
	// The journey flashes with flash.DefaultMemory, like `flashline-agent flash` without
	// --memory: hold the whole process to it, as the pipeline's sizing assumes.
	// The swarm's window and client are on top of it: reckoned in always, since whether a
	// job offers a swarm is known only later, and a limit is no allocation.
	mem, err := membudget.For(flash.DefaultMemory, os.Getenv)
	if err != nil {
		return err
	}
	if mem.MemoryLimit >= 0 {
		mem.MemoryLimit += flash.SwarmMemory(&flash.Swarm{})
	}
	membudget.Apply(mem)
	policy, err := trust.Load(trustRoot)
	if err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	if policy.Development() {
		env.Console.Warnf("trust: no operator key in this initramfs: development build, unsigned jobs accepted")
	} else {
		env.Console.Infof("trust: %s", policy)
	}
	if err := policy.CheckAPIURL(env.Server); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	api, err := lineclient.New(env.Server, policy.APIClient(30*time.Second))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(env)}))
	jenv := journey.Env{
		Console:      env.Console,
		Log:          log,
		AgentVersion: env.Version,
		Server:       env.Server,
		BootMAC:      env.NIC.MAC.String(),
		IP:           env.NIC.IP.IP.String(),
		BootTimings:  env.Timings,
	}
	con := operator.New(os.Stdout, operator.ColorAuto(os.Stdout, os.Getenv))
	jenv.Summary = func(res protocol.Result) {
		con.Summary("run "+res.RunID, scenario.Report{Steps: res.Steps, Status: res.Status, FailedStep: res.FailedStep, Reason: res.Reason})
	}
	deps := Deps(policy, con, log, Hardware{Root: "/", Checks: checks.Default()})
	deps.LLDP = func(ctx context.Context) (protocol.LLDPNeighbor, error) { return lldp.Listen(ctx, env.NIC.Name) }
	out, err := journey.Run(ctx, jenv, api, deps)
	if err != nil {
		return err
	}
	return journey.Finish(ctx, jenv, deps, out)
}

func logLevel(env *bootstrap.Env) slog.Level {
	if env.Params.Debug {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// Hardware is the machine the scenario's checks look at.
type Hardware struct {
	// Root is the system tree (sys/, proc/, dev/) the inventory reads; "/" on a device.
	Root string
	// Checks are the check kinds scenarios may use.
	Checks *checks.Registry
}

// Deps returns the journey's parts on this machine.
func Deps(policy *trust.Policy, con *operator.Console, log *slog.Logger, hw Hardware) journey.Deps {
	inv := inventory.Reader{Root: hw.Root, Log: log}
	// Steps that time the network hold it quiet; a flash while testing waits on it.
	quiet := netquiet.New()
	return journey.Deps{
		Network:   quiet,
		Inventory: inv.Inventory,
		VerifyJob: func(sj protocol.SignedJob, want trust.Expect) (protocol.Job, error) {
			return policy.VerifyJob(&sj, want)
		},
		RunScenario: ScenarioRunner{Checks: hw.Checks, Inventory: inv, Console: con, Log: log, Network: quiet}.Run,
		Flash: func(ctx context.Context, req journey.FlashRequest) (protocol.FlashResult, error) {
			return Flash(ctx, req, policy, log)
		},
		After: func(ctx context.Context, action string) error {
			return power.Do(ctx, power.Kernel{}, action)
		},
		// A rule's /dev target must exist as a block device; the journey waits for it.
		CheckTarget: target.LiveChecker().CheckDevPath,
	}
}

// ScenarioRunner is the journey's RunScenario: it parses and plans the job's scenario for this
// hardware, shows it on the console and runs it, reporting every step as it happens.
type ScenarioRunner struct {
	Checks    *checks.Registry
	Inventory checks.InventorySource
	Console   *operator.Console
	Log       *slog.Logger
	// Network is held quiet by the steps that time a link (nil: no flash runs beside them).
	Network scenario.Quieter
}

// Run runs the scenario data against hw, emitting the step events; an error means the
// scenario could not be run at all (it does not parse or does not apply to hw).
func (s ScenarioRunner) Run(ctx context.Context, data []byte, hw protocol.Inventory, emit func(protocol.Event)) ([]protocol.StepResult, error) {
	sc, err := scenario.Parse("scenario", data, s.Checks)
	if err != nil {
		return nil, err
	}
	plan, err := sc.Plan(hw)
	if err != nil {
		return nil, err
	}
	r := &scenario.Runner{
		Inventory: s.Inventory,
		Operator:  promptReporter{s.Console, emit},
		Log:       s.Log,
		Network:   s.Network,
		OnEvent: func(ev scenario.Event) {
			s.Console.Event(ev)
			emit(ev.Protocol())
		},
	}
	s.Console.Plan(sc.Name, plan)
	// No summary here: the journey shows the verdict once the flash is verified too.
	return r.Run(ctx, plan).Steps, nil
}

// promptReporter shows an operator prompt on the console and tells the server the device is
// waiting for the operator, so the dashboard can show it too.
type promptReporter struct {
	con  *operator.Console
	emit func(protocol.Event)
}

func (p promptReporter) Prompt(step, message string) {
	p.con.Prompt(step, message)
	p.emit(protocol.Event{Kind: protocol.EventPrompt, Step: step, Message: message})
}

// Flash is the journey's flash step: the job's block map (when it has one), then the image,
// both downloaded through the trust policy's client.
func Flash(ctx context.Context, req journey.FlashRequest, policy *trust.Policy, log *slog.Logger) (protocol.FlashResult, error) {
	var bm *bmap.Map
	if req.BmapURL != "" {
		m, err := flash.LoadBmap(ctx, req.BmapURL, req.BmapSHA256, policy.DownloadClient(0))
		if err != nil {
			return protocol.FlashResult{Target: req.Target}, err
		}
		bm = m
	}
	var sw *flash.Swarm
	if req.Swarm != nil {
		sw = &flash.Swarm{Torrent: req.Swarm.TorrentURL, InfoHash: req.Swarm.InfoHash, Linger: req.Swarm.Linger}
	}
	res, err := flash.Write(ctx, flash.Options{
		Swarm: sw,
		Bmap:  bm,
		Hold:  req.Hold, Commit: req.Commit,
		Source: req.Source, Target: req.Target, SHA256: req.SHA256, Size: req.Size,
		VerifyReadback:    req.Options.VerifyReadback,
		GrowLastPartition: req.Options.GrowLastPartition,
		HTTPClient:        policy.DownloadClient(0),
		Logger:            log,
		ProgressInterval:  time.Second,
		Progress: func(p flash.Progress) {
			if req.Progress != nil {
				req.Progress(p.Written, p.Total)
			}
		},
	})
	fr := protocol.FlashResult{Target: req.Target, Bytes: res.Bytes, SHA256: res.SHA256, Format: res.Format,
		DurationMS: res.Duration.Milliseconds(), Resumes: res.Resumes}
	if s := res.Swarm; s.Used {
		log.Info("swarm flash", "from_peers", s.FromPeers, "from_server_seed", s.FromServer, "from_http", s.FromHTTP, "served", s.Uploaded,
			"banned", s.BadPeers, "lingered", s.Lingered, "fallback", s.Fallback)
	}
	for _, w := range res.Warnings {
		log.Warn("flash", "warning", w)
	}
	return fr, err
}
