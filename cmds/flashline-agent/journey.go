package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/flashline/flashline/agent/bootstrap"
	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/flash"
	"github.com/flashline/flashline/agent/flash/bmap"
	"github.com/flashline/flashline/agent/flash/target"
	"github.com/flashline/flashline/agent/inventory"
	"github.com/flashline/flashline/agent/journey"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/agent/netquiet"
	"github.com/flashline/flashline/agent/operator"
	"github.com/flashline/flashline/agent/power"
	"github.com/flashline/flashline/agent/protocol"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/agent/trust"
)

// trustRoot is where the initramfs keeps the operator's public key and pinned CA.
const trustRoot = "/"

// runJourney wires the journey's parts to the real hardware, trust policy, scenario runner
// and flash pipeline, runs it once and carries out the after-action.
func runJourney(ctx context.Context, env *bootstrap.Env) error {
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
	deps := journeyDeps(policy, con, log)
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

// journeyDeps returns the journey's parts on this machine.
func journeyDeps(policy *trust.Policy, con *operator.Console, log *slog.Logger) journey.Deps {
	inv := inventory.Reader{Root: "/", Log: log}
	reg := checks.Default()
	// Steps that time the network hold it quiet; a flash while testing waits on it.
	quiet := netquiet.New()
	return journey.Deps{
		Network:   quiet,
		Inventory: inv.Inventory,
		VerifyJob: func(sj protocol.SignedJob, want journey.Expect) (protocol.Job, error) {
			return policy.VerifyJob(&sj, trust.Expect{Serial: want.Serial, MAC: want.MAC, Nonce: want.Nonce, Now: want.Now, InventorySHA256: want.InventorySHA256})
		},
		RunScenario: func(ctx context.Context, data []byte, hw protocol.Inventory, emit func(protocol.Event)) ([]protocol.StepResult, error) {
			sc, err := scenario.Parse("scenario", data, reg)
			if err != nil {
				return nil, err
			}
			plan, err := sc.Plan(hw)
			if err != nil {
				return nil, err
			}
			r := &scenario.Runner{
				Inventory: inv,
				Operator:  promptReporter{con, emit},
				Log:       log,
				Network:   quiet,
				OnEvent: func(ev scenario.Event) {
					con.Event(ev)
					emit(ev.Protocol())
				},
			}
			con.Plan(sc.Name, plan)
			// No summary here: the journey shows the verdict once the flash is verified too.
			return r.Run(ctx, plan).Steps, nil
		},
		Flash: func(ctx context.Context, req journey.FlashRequest) (protocol.FlashResult, error) {
			var bm *bmap.Map
			if req.BmapURL != "" {
				m, err := flash.LoadBmap(ctx, req.BmapURL, req.BmapSHA256, policy.DownloadClient(0))
				if err != nil {
					return protocol.FlashResult{Target: req.Target}, err
				}
				bm = m
			}
			res, err := flash.Write(ctx, flash.Options{
				Bmap: bm,
				Hold: req.Hold, Commit: req.Commit,
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
			return fr, err
		},
		After: func(ctx context.Context, action string) error {
			return power.Do(ctx, power.Kernel{}, action)
		},
		// A rule's /dev target must exist as a block device; the journey waits for it.
		CheckTarget: target.LiveChecker().CheckDevPath,
	}
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
