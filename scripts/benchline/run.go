package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flashline/flashline/testbed/netlab"
)

type bench struct {
	c       config
	img     image
	srv     *server
	srvHost *netlab.Host
	devs    []*netlab.Host
	work    string
	log     *slog.Logger
}

// device is one agent's run.
type device struct {
	idx   int
	start time.Time
	// flashed is from the start to the first sign that the flash is complete: the image's
	// first MiB on the target (the agent writes it last, once the hash matched; a linger
	// comes after it) or the agent's "flash: wrote" line, whichever came first.
	flashed  time.Duration
	once     sync.Once
	finished chan struct{}
	exited   time.Duration // start to exit
	code     int
	reason   string // the agent's last stderr line
	victim   bool
	killedAt time.Duration // 0 unless killed before it finished
	ok       bool          // target verified
	bad      string        // why the target is wrong
}

// result sums up one run of the line.
type result struct {
	slowest   float64 // seconds, slowest flashed device that was not killed
	egress    int64   // bytes the server sent during the run
	right     int     // devices (not killed) whose target is right
	failed    int     // devices (not killed) that exited non-zero
	falseOK   int     // exit 0 but a wrong target
	killedMid int
}

// line starts one agent per device of devs, c.Stagger apart, waits for all, checks every
// target and prints the run's figures. Devices in kill (by index into devs) are SIGKILLed
// and unplugged once their target holds a third of the image.
func (b *bench) line(ctx context.Context, label string, devs []*netlab.Host, swarm bool, kill map[int]bool) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, b.c.Timeout+time.Duration(len(devs))*b.c.Stagger)
	defer cancel()
	dir := filepath.Join(b.work, strings.NewReplacer(" ", "-", ",", "").Replace(label))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	before, err := b.srvHost.TxBytes(ctx)
	if err != nil {
		return nil, err
	}
	m0 := b.srv.counters(ctx, b.devs[0])
	fmt.Fprintf(os.Stderr, "bench-line: run %q: %d devices\n", label, len(devs))
	t0 := time.Now()
	results := make([]*device, len(devs))
	var wg sync.WaitGroup
	var startErr error
	for i, h := range devs {
		if i > 0 {
			select {
			case <-time.After(b.c.Stagger):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			startErr = ctx.Err()
			break
		}
		d := &device{idx: i, victim: kill[i]}
		results[i] = d
		target := filepath.Join(dir, fmt.Sprintf("target-%02d.img", i))
		if err := b.start(ctx, &wg, h, d, target, filepath.Join(dir, fmt.Sprintf("agent-%02d.log", i)), swarm); err != nil {
			startErr = err
			break
		}
	}
	wg.Wait()
	wall := time.Since(t0)
	after, err := b.srvHost.TxBytes(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	for _, h := range devs {
		_ = h.Plug(context.WithoutCancel(ctx)) // victims back on the line for the next run
	}
	if startErr != nil {
		return nil, fmt.Errorf("run %q: %w", label, startErr)
	}

	r := &result{egress: after - before}
	var times []float64
	for _, d := range results {
		if d.killedAt > 0 {
			r.killedMid++
		}
		target := filepath.Join(dir, fmt.Sprintf("target-%02d.img", d.idx))
		if d.victim {
			os.Remove(target)
			continue
		}
		if d.code != 0 {
			r.failed++
			fmt.Printf("  %s: device %02d failed (exit %d): %s\n", label, d.idx, d.code, d.reason)
			os.Remove(target)
			continue
		}
		ok, why, err := checkTarget(target, b.img)
		if err != nil {
			why = err.Error()
		}
		os.Remove(target)
		if !ok {
			r.falseOK++
			fmt.Printf("  %s: device %02d FALSE SUCCESS (exit 0): %s\n", label, d.idx, why)
			continue
		}
		r.right++
		times = append(times, d.flashed.Seconds())
	}
	slices.Sort(times)
	if len(times) > 0 {
		r.slowest = times[len(times)-1]
	}
	med := 0.0
	if len(times) > 0 {
		med = times[len(times)/2]
	}
	fmt.Printf("%s: %d devices, %d right, %d failed, %d false successes, %d killed; flash time fastest %.1f s, median %.1f s, slowest %.1f s; server egress %.1f MiB (%.2f x image); run %.0f s\n",
		label, len(devs), r.right, r.failed, r.falseOK, r.killedMid, first(times), med, r.slowest,
		mib(r.egress), float64(r.egress)/float64(b.img.Size), wall.Seconds())
	if m1 := b.srv.counters(context.WithoutCancel(ctx), b.devs[0]); m0 != nil && m1 != nil {
		fmt.Printf("  %s: of the server's egress, seed (BitTorrent) %.1f MiB, HTTP (downloads and web seed) %.1f MiB\n", label,
			(m1["flashline_swarm_seed_upload_bytes_total"]-m0["flashline_swarm_seed_upload_bytes_total"])/(1<<20),
			(m1["flashline_image_http_bytes_total"]-m0["flashline_image_http_bytes_total"])/(1<<20))
	}
	if !b.c.KeepLogs {
		for _, d := range results {
			os.Remove(filepath.Join(dir, fmt.Sprintf("agent-%02d.log", d.idx)))
		}
	}
	return r, nil
}

func first(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	return s[0]
}

// start runs one agent in h's namespace and, in the background, waits for it (and kills it
// mid-transfer when d is a victim).
func (b *bench) start(ctx context.Context, wg *sync.WaitGroup, h *netlab.Host, d *device, target, logPath string, swarm bool) error {
	os.Remove(target)
	args := append([]string{"flash"}, strings.Fields(b.c.AgentArgs)...)
	if swarm {
		args = append(args, "--torrent", b.srv.torrent, "--linger", b.c.Linger.String())
	}
	args = append(args, "--sha256", b.img.SHA256, "--size", fmt.Sprint(b.img.RawSize),
		b.srv.base+"/images/"+b.srv.file, target)
	cmd := h.Command(ctx, b.c.Agent, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("agent log: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return fmt.Errorf("agent stderr: %w", err)
	}
	cmd.Stdout = logf
	d.start = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting agent %d: %w", d.idx, err)
	}
	wg.Add(1)
	d.finished = make(chan struct{})
	if d.victim {
		go b.killWhenMid(ctx, h, cmd, d, target, d.finished)
	}
	go watchCommit(ctx, d, target)
	go func() {
		defer wg.Done()
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if strings.TrimSpace(line) != "" {
				d.reason = line
			}
			if strings.HasPrefix(line, "flash: wrote ") {
				d.done(time.Since(d.start))
			}
		}
		err := cmd.Wait()
		d.exited = time.Since(d.start)
		d.done(d.exited)
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			d.code = ee.ExitCode()
			if d.code < 0 {
				d.code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
			}
		case err != nil:
			d.code = -1
			d.reason = err.Error()
		}
	}()
	return nil
}

// done records the first sign that the flash is complete.
func (d *device) done(at time.Duration) {
	d.once.Do(func() {
		d.flashed = at
		close(d.finished)
	})
}

// watchCommit polls the target's first 4 KiB every 100 ms: the agent writes the first MiB
// last, after the whole image was written and its hash matched, so its appearance is the
// flash's end, before any linger. The bench's image starts with random data, never zeros.
func watchCommit(ctx context.Context, d *device, target string) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	buf := make([]byte, 4096)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.finished:
			return
		case <-t.C:
		}
		f, err := os.Open(target)
		if err != nil {
			continue
		}
		n, _ := f.ReadAt(buf, 0)
		f.Close()
		if n == len(buf) && slices.ContainsFunc(buf, func(c byte) bool { return c != 0 }) {
			d.done(time.Since(d.start))
			return
		}
	}
}

// killWhenMid SIGKILLs the agent once its target holds a third of the image, then unplugs
// its cable, as when a device loses power mid-transfer: its peers see it vanish without a
// goodbye.
func (b *bench) killWhenMid(ctx context.Context, h *netlab.Host, cmd *exec.Cmd, d *device, target string, finished <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-finished:
			fmt.Fprintf(os.Stderr, "bench-line: victim %02d finished before it was killed\n", d.idx)
			_ = cmd.Process.Kill()
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st, err := os.Stat(target); err == nil && st.Size() >= b.img.RawSize/3 {
			_ = cmd.Process.Kill()
			d.killedAt = time.Since(d.start)
			if err := h.Unplug(ctx); err != nil {
				b.log.Warn("unplugging a victim", "device", d.idx, "err", err)
			}
			fmt.Fprintf(os.Stderr, "bench-line: killed and unplugged device %02d after %.1f s at %d MiB\n", d.idx, d.killedAt.Seconds(), st.Size()>>20)
			return
		}
	}
}
