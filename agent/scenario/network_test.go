package scenario

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/netquiet"
	"github.com/flashline/flashline/agent/probe/wifi"
	"github.com/flashline/flashline/protocol"
)

// quietProber is a Wi-Fi prober that records whether the network gate was quiet while the
// throughput was pushed.
type quietProber struct {
	gate  *netquiet.Gate
	mu    sync.Mutex
	quiet []bool
}

func (q *quietProber) WifiScan(ctx context.Context, req wifi.ScanRequest) (wifi.ScanResult, error) {
	return wifi.ScanResult{}, nil
}

func (q *quietProber) WifiThroughput(ctx context.Context, req wifi.ThroughputRequest) (wifi.ThroughputResult, error) {
	q.mu.Lock()
	q.quiet = append(q.quiet, q.gate.Quieted())
	q.mu.Unlock()
	return wifi.ThroughputResult{Mbps: 50, Bytes: 1 << 20, Elapsed: time.Second}, nil
}

// TestQuietNetwork: the runner holds the network gate quiet exactly while a step that times
// the network runs: wifi.throughput by its kind, any step with quiet_network: true, and not
// for other steps; retries stay inside one hold, and the gate is open once the run ends.
func TestQuietNetwork(t *testing.T) {
	gate := netquiet.New()
	prober := &quietProber{gate: gate}
	var mu sync.Mutex
	seen := map[string][]bool{}
	probe := func(name string) checks.Kind {
		return checks.Define(name, "records whether the network is quiet", nil, nil,
			func(struct{}) checks.Check {
				return checks.CheckFunc(func(ctx context.Context, env *checks.Env) (checks.Outcome, error) {
					mu.Lock()
					seen[env.Step] = append(seen[env.Step], gate.Quieted())
					n := len(seen[env.Step])
					mu.Unlock()
					if env.Step == "flaky iperf" && n == 1 {
						return checks.Failf(nil, "first attempt fails"), nil
					}
					return checks.Passf(nil, "ok"), nil
				})
			})
	}
	reg, err := checks.New(checks.WifiThroughput(prober), probe("probe"))
	if err != nil {
		t.Fatal(err)
	}
	src := `name: quiet
steps:
  - name: scan
    probe:
  - name: throughput
    wifi.throughput: {ssid: LINE-TEST, sink: "192.168.77.1:5201", duration: 1s}
  - name: flaky iperf
    probe:
    quiet_network: true
    retries: 1
    retry_delay: 1ms
  - name: group
    parallel:
      - name: beside
        probe:
      - name: iperf in a group
        probe:
        quiet_network: true
`
	s, err := Parse("quiet.yaml", []byte(src), reg)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.Plan(protocol.Inventory{})
	if err != nil {
		t.Fatal(err)
	}
	rep := (&Runner{Network: gate}).Run(context.Background(), plan)
	if rep.Status != protocol.StatusPass {
		t.Fatalf("run %s: %s %s", rep.Status, rep.FailedStep, rep.Reason)
	}
	if len(prober.quiet) != 1 || !prober.quiet[0] {
		t.Errorf("wifi.throughput ran with the network quiet: %v, want [true]", prober.quiet)
	}
	for step, want := range map[string][]bool{"scan": {false}, "flaky iperf": {true, true}, "iperf in a group": {true}} {
		got := seen[step]
		if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
			t.Errorf("%s: quiet during its attempts %v, want %v", step, got, want)
		}
	}
	if gate.Quieted() {
		t.Error("the gate is still quiet after the run")
	}
	for _, p := range plan {
		if want := p.Step.Name == "throughput" || p.Step.QuietNetwork; p.Step.NeedsQuietNetwork() != want {
			t.Errorf("%s: NeedsQuietNetwork %v", p.Step.Name, !want)
		}
	}
}
