package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flashline/flashline/testbed/netlab"
)

const serverPort = "8080"

// server is the line server running in its namespace.
type server struct {
	cmd     *exec.Cmd
	done    chan error
	log     string
	base    string // http://ADDR:PORT
	file    string // the image's name under /images/
	swarm   bool
	torrent string // the .torrent URL when swarm
}

// writeServerConfig lays out a line server's directories under dir (the image hard-linked
// into images/) and writes its configuration for an HTTP listener at listen.
func writeServerConfig(dir, listen string, img image, swarm bool) (string, error) {
	for _, d := range []string{"data", "images", "scenarios"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", fmt.Errorf("server layout: %w", err)
		}
	}
	name := filepath.Base(img.Path)
	link := filepath.Join(dir, "images", name)
	if _, err := os.Stat(link); err != nil {
		if err := os.Link(img.Path, link); err != nil {
			return "", fmt.Errorf("server layout: %w", err)
		}
	}
	sum := fmt.Sprintf("%s  %s size=%d\n", img.SHA256, name, img.RawSize)
	if err := os.WriteFile(link+".sha256", []byte(sum), 0o644); err != nil {
		return "", fmt.Errorf("server layout: %w", err)
	}
	// Lint (run before the server starts) wants a scenario with one step; the bench's
	// agents never ask for a job, they flash the image directly.
	scen := "name: bench\nsteps:\n  - name: memory\n    memory.min: {min: 1MB}\n"
	if err := os.WriteFile(filepath.Join(dir, "scenarios", "bench.yaml"), []byte(scen), 0o644); err != nil {
		return "", fmt.Errorf("server layout: %w", err)
	}
	cfg := fmt.Sprintf(`data_dir: %[1]s/data
images_dir: %[1]s/images
scenarios_dir: %[1]s/scenarios
http: {enabled: true, listen: "%[2]s"}
images: [{name: bench, file: %[3]s}]
rules: [{name: all, scenario: bench.yaml, image: bench}]
`, dir, listen, name)
	if swarm {
		cfg += "swarm: {enabled: true}\n"
	}
	path := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", fmt.Errorf("server config: %w", err)
	}
	return path, nil
}

// startServer runs the line server in host's namespace and waits, asking from probe's
// namespace, until it serves the image (and its .torrent with swarm).
func startServer(ctx context.Context, c config, work string, host, probe *netlab.Host, img image, swarm bool) (*server, error) {
	dir := filepath.Join(work, "server")
	cfg, err := writeServerConfig(dir, host.IP()+":"+serverPort, img, swarm)
	if err != nil {
		return nil, err
	}
	s := &server{log: filepath.Join(dir, "server.log"), base: "http://" + host.IP() + ":" + serverPort,
		file: filepath.Base(img.Path), swarm: swarm, done: make(chan error, 1)}
	if swarm {
		s.torrent = s.base + "/images/" + s.file + ".torrent"
	}
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, fmt.Errorf("server log: %w", err)
	}
	s.cmd = host.Command(context.WithoutCancel(ctx), c.Server, "-config", cfg, "-log-level", "warn")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting the server: %w", err)
	}
	go func() { s.done <- s.cmd.Wait(); logf.Close() }()
	urls := []string{s.base + "/images/" + s.file}
	if swarm {
		urls = append(urls, s.torrent)
	}
	// The server hashes the image (and makes its torrent) before it serves it.
	deadline := time.Now().Add(3 * time.Minute)
	for _, u := range urls {
		for {
			if err := probe.Command(ctx, "curl", "-sfI", "-o", "/dev/null", "--max-time", "5", u).Run(); err == nil {
				break
			}
			select {
			case err := <-s.done:
				return nil, fmt.Errorf("the server exited (%v): %s", err, tail(s.log))
			case <-ctx.Done():
				s.stop()
				return nil, ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				s.stop()
				return nil, fmt.Errorf("the server does not serve %s: %s", u, tail(s.log))
			}
		}
	}
	return s, nil
}

func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd.Process = nil
}

// metrics prints the server's swarm and image figures from /metrics, for the reader of the
// bench (the egress figure comes from the interface counters, not from these).
func (s *server) metrics(ctx context.Context, probe *netlab.Host) {
	out, err := probe.Command(ctx, "curl", "-sf", "--max-time", "10", s.base+"/metrics").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-line: /metrics:", err)
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "#") && (strings.Contains(l, "swarm") || strings.Contains(l, "image_http_bytes")) {
			fmt.Println("  metrics:", l)
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

func envString(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func envDuration(k string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

// counters sums the server's byte counters by metric name (over their labels): the split of
// its egress between the swarm's seed and HTTP (downloads and the web seed).
func (s *server) counters(ctx context.Context, probe *netlab.Host) map[string]float64 {
	out, err := probe.Command(ctx, "curl", "-sf", "--max-time", "10", s.base+"/metrics").Output()
	if err != nil {
		return nil
	}
	return parseCounters(out, "flashline_swarm_seed_upload_bytes_total", "flashline_image_http_bytes_total")
}

// parseCounters sums, in a Prometheus text exposition, the samples of each named metric over
// its label sets. Lines it cannot read are skipped.
func parseCounters(text []byte, names ...string) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		name := l
		if i := strings.IndexAny(l, "{ "); i >= 0 {
			name = l[:i]
		}
		if !slices.Contains(names, name) {
			continue
		}
		// The value follows the labels (which may hold spaces inside quotes).
		rest := l[len(name):]
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			m[name] += v
		}
	}
	return m
}
