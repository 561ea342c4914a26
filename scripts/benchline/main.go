// Command benchline is scripts/bench-line: a virtual line of N devices flashing one image from
// one line server, each device in its own network namespace behind a tc-shaped veth
// (testbed/netlab's Switch), through the BitTorrent swarm and over plain HTTP in the same
// run. Its last line is the contract:
//
//	line: devices N, image M MiB, server egress E MiB (X x image), one device T1 s, slowest Tn s (Y x), http slowest Th s, false successes F
//
// It needs root (namespaces) and the two binaries built (-agent, -server); the shell
// wrapper builds them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flashline/flashline/testbed/netlab"
)

type config struct {
	N          int
	MiB        int
	Stagger    time.Duration
	DeviceMbit int64
	ServerMbit int64
	Kill       int
	Swarm      string // auto, on, off
	Linger     time.Duration
	Timeout    time.Duration
	Dir        string
	Agent      string
	Server     string
	KeepLogs   bool
	SkipHTTP   bool
	AgentArgs  string
	Slow       map[int]bool // devices on a slower link
	SlowMbit   int64
}

func main() {
	var c config
	flag.IntVar(&c.N, "n", envInt("BENCH_LINE_N", 20), "devices on the line (env BENCH_LINE_N)")
	flag.IntVar(&c.MiB, "mib", envInt("BENCH_LINE_MIB", 100), "image size in MiB, about what zstd leaves of it (env BENCH_LINE_MIB)")
	flag.DurationVar(&c.Stagger, "stagger", envDuration("BENCH_LINE_STAGGER", 1500*time.Millisecond), "time between two devices starting (env BENCH_LINE_STAGGER)")
	flag.Int64Var(&c.DeviceMbit, "device-mbit", int64(envInt("BENCH_LINE_DEVICE_MBIT", 100)), "each device's link, Mbit/s each way")
	flag.Int64Var(&c.ServerMbit, "server-mbit", int64(envInt("BENCH_LINE_SERVER_MBIT", 100)), "the server's uplink, Mbit/s each way")
	flag.IntVar(&c.Kill, "kill", envInt("KILL", 0), "also run the swarm with this many agents SIGKILLed and unplugged mid-transfer (env KILL)")
	flag.StringVar(&c.Swarm, "swarm", envString("BENCH_LINE_SWARM", "auto"), "swarm mode: auto (when server and agent support it), on, off")
	flag.DurationVar(&c.Linger, "linger", envDuration("BENCH_LINE_LINGER", 60*time.Second), "agent --linger after a swarm flash")
	flag.DurationVar(&c.Timeout, "timeout", 15*time.Minute, "longest one run of the line may take")
	flag.StringVar(&c.Dir, "dir", envString("BENCH_DIR", "/var/tmp/flashline-bench"), "cache and work directory (env BENCH_DIR)")
	flag.StringVar(&c.Agent, "agent", "", "flashline-agent binary")
	flag.StringVar(&c.Server, "server", "", "flashline-server binary")
	flag.BoolVar(&c.KeepLogs, "keep-logs", false, "keep the server's and agents' logs")
	flag.StringVar(&c.AgentArgs, "agent-args", "", "extra flags for every agent, space-separated (e.g. -v)")
	flag.BoolVar(&c.SkipHTTP, "skip-http", false, "skip the plain HTTP baseline (its figure prints as -)")
	slow := flag.String("slow", envString("BENCH_LINE_SLOW", ""), "devices (indexes from 0, comma-separated) on a slower link of -slow-mbit: a bad cable, a port at 100 Mbit/s (env BENCH_LINE_SLOW)")
	flag.Int64Var(&c.SlowMbit, "slow-mbit", int64(envInt("BENCH_LINE_SLOW_MBIT", 10)), "the -slow devices' link, Mbit/s each way")
	flag.Parse()
	var err error
	if c.Slow, err = parseSlow(*slow, c.N); err != nil {
		fmt.Fprintln(os.Stderr, "benchline: -slow wants device indexes below -n, comma-separated:", err)
		os.Exit(2)
	}
	if c.SlowMbit < 1 {
		fmt.Fprintln(os.Stderr, "benchline: -slow-mbit must be at least 1")
		os.Exit(2)
	}
	if c.Agent == "" || c.Server == "" || c.N < 1 || c.Kill < 0 || c.Kill >= c.N {
		fmt.Fprintln(os.Stderr, "benchline: need -agent, -server, -n >= 1 and 0 <= -kill < -n")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench-line:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Fprintf(os.Stderr, "bench-line: image of %d MiB under %s\n", c.MiB, c.Dir)
	img, err := makeImage(ctx, c.Dir, c.MiB)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(c.Dir, "line-")
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	defer func() {
		if c.KeepLogs {
			fmt.Fprintln(os.Stderr, "bench-line: logs kept in", work)
			return
		}
		os.RemoveAll(work)
	}()

	swarm, err := swarmWanted(ctx, c, work, img)
	if err != nil {
		return err
	}

	prefix := fmt.Sprintf("flbl%d", os.Getpid())
	sw, err := netlab.NewSwitch(ctx, prefix)
	if err != nil {
		return err
	}
	defer sw.Close()
	srvHost, err := sw.AddHost(ctx, "srv", netip.MustParsePrefix("10.78.0.1/16"), c.ServerMbit*1e6)
	if err != nil {
		return err
	}
	devs := make([]*netlab.Host, c.N)
	for i := range devs {
		a := netip.AddrFrom4([4]byte{10, 78, byte(1 + i/250), byte(1 + i%250)})
		rate := c.DeviceMbit
		if c.Slow[i] {
			rate = c.SlowMbit
		}
		if devs[i], err = sw.AddHost(ctx, fmt.Sprintf("d%02d", i), netip.PrefixFrom(a, 16), rate*1e6); err != nil {
			return err
		}
	}
	fmt.Printf("line: %d devices at %d Mbit/s each way, server uplink %d Mbit/s each way (tc tbf on veth, one bridge), staggered %s; image %.1f MiB zstd (%.1f MiB raw); swarm %s, linger %s\n",
		c.N, c.DeviceMbit, c.ServerMbit, c.Stagger, mib(img.Size), mib(img.RawSize), onOff(swarm), c.Linger)
	if len(c.Slow) > 0 {
		fmt.Printf("line: slow links: devices %v at %d Mbit/s each way\n", slices.Sorted(maps.Keys(c.Slow)), c.SlowMbit)
	}

	srv, err := startServer(ctx, c, work, srvHost, devs[0], img, swarm)
	if err != nil {
		return err
	}
	defer srv.stop()

	b := &bench{c: c, img: img, srv: srv, srvHost: srvHost, devs: devs, work: work, log: log}
	var solo, line, killed, plain *result
	if swarm {
		if solo, err = b.line(ctx, "one device, swarm", devs[:1], true, nil); err != nil {
			return err
		}
		if line, err = b.line(ctx, "swarm", devs, true, nil); err != nil {
			return err
		}
		if c.Kill > 0 {
			if killed, err = b.line(ctx, fmt.Sprintf("swarm, %d killed", c.Kill), devs, true, killSet(c.N, c.Kill)); err != nil {
				return err
			}
		}
	} else {
		// Without a swarm the "swarm" figures are those of HTTP, labelled so.
		if solo, err = b.line(ctx, "one device, http (no swarm)", devs[:1], false, nil); err != nil {
			return err
		}
		if c.Kill > 0 {
			if killed, err = b.line(ctx, fmt.Sprintf("http, %d killed", c.Kill), devs, false, killSet(c.N, c.Kill)); err != nil {
				return err
			}
		}
	}
	if !c.SkipHTTP {
		if plain, err = b.line(ctx, "http", devs, false, nil); err != nil {
			return err
		}
	}
	if line == nil {
		line = plain
	}
	srv.metrics(ctx, devs[0])

	if killed != nil {
		fmt.Printf("kill: %d of %d agents SIGKILLed and unplugged mid-transfer (%d of them before finishing); %d of the other %d finished with the right hash, slowest %.1f s, false successes %d\n",
			c.Kill, c.N, killed.killedMid, killed.right, c.N-c.Kill, killed.slowest, killed.falseOK)
	}
	th := "-"
	if plain != nil {
		th = fmt.Sprintf("%.1f", plain.slowest)
	}
	falseOK := solo.falseOK
	for _, r := range []*result{line, killed, plain} {
		if r != nil {
			falseOK += r.falseOK
		}
	}
	if line == nil {
		return errors.New("no line run (swarm off and -skip-http)")
	}
	if !swarm {
		fmt.Println("line: NOTE no swarm on this build: the swarm figures below are plain HTTP")
	}
	fmt.Printf("line: devices %d, image %.0f MiB, server egress %.0f MiB (%.1f x image), one device %.1f s, slowest %.1f s (%.2f x), http slowest %s s, false successes %d\n",
		c.N, mib(img.Size), mib(line.egress), float64(line.egress)/float64(img.Size), solo.slowest, line.slowest, line.slowest/solo.slowest, th, falseOK)
	return nil
}

// killSet spreads k victims over n devices, starting with the second to start: the early
// devices are the ones the later ones get pieces from.
func killSet(n, k int) map[int]bool {
	m := map[int]bool{}
	for i := 0; i < k; i++ {
		m[1+i*n/k] = true
	}
	return m
}

// swarmWanted decides the swarm mode: "auto" is on when the agent has --torrent and the
// server accepts a swarm configuration.
func swarmWanted(ctx context.Context, c config, work string, img image) (bool, error) {
	switch c.Swarm {
	case "on":
		return true, nil
	case "off":
		return false, nil
	case "auto":
	default:
		return false, fmt.Errorf("-swarm %q: want auto, on or off", c.Swarm)
	}
	help, _ := exec.CommandContext(ctx, c.Agent, "flash", "-h").CombinedOutput()
	if !strings.Contains(string(help), "-torrent") {
		fmt.Fprintln(os.Stderr, "bench-line: the agent has no --torrent: swarm off")
		return false, nil
	}
	cfg, err := writeServerConfig(filepath.Join(work, "check"), "127.0.0.1:1", img, true)
	if err != nil {
		return false, err
	}
	if out, err := exec.CommandContext(ctx, c.Server, "check", "-config", cfg).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench-line: the server does not take a swarm configuration: swarm off (%s)\n", strings.TrimSpace(string(out)))
		return false, nil
	}
	return true, nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// parseSlow reads -slow: device indexes below n, comma-separated; "" is none.
func parseSlow(s string, n int) (map[int]bool, error) {
	slow := map[int]bool{}
	if strings.TrimSpace(s) == "" {
		return slow, nil
	}
	for _, f := range strings.Split(s, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", f, err)
		}
		if i < 0 || i >= n {
			return nil, fmt.Errorf("device %d: not on a line of %d", i, n)
		}
		slow[i] = true
	}
	return slow, nil
}
