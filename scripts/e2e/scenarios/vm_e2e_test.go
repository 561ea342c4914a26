//go:build e2e

package scenarios

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// vmConfig is one emulated device. This is a stop-gap over raw QEMU until the
// foundation's scripts/qemu harness covers USB serial, QMP keys and rdinit.
type vmConfig struct {
	Initrd string
	Append string
	// Modem, when set, serves the guest's usb-serial port (ttyUSB0).
	Modem func(ctx context.Context, rw io.ReadWriter) error
	// OnLine is called for every console line; it may use the QMP client.
	OnLine func(line string, q *qmpClient)
	// Done reports from the console so far whether the guest finished.
	Done  func(console string) bool
	Limit time.Duration
}

// runVM boots the device under the machine-wide QEMU lock and returns its
// console.
func runVM(t *testing.T, cfg vmConfig) string {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 128<<20); err != nil {
		t.Fatal(err)
	}
	qmpPath := filepath.Join(dir, "qmp.sock")
	modemPath := filepath.Join(dir, "modem.sock")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Limit+15*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	defer wg.Wait()
	args := []string{"/tmp/flashline-qemu.lock", "timeout", fmt.Sprint(int(cfg.Limit.Seconds())),
		"qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1",
		"-kernel", kernelPath(), "-initrd", cfg.Initrd,
		"-append", "console=ttyS0 loglevel=1 panic=-1 " + cfg.Append,
		"-display", "none", "-serial", "stdio", "-no-reboot", "-nic", "none",
		"-smbios", "type=1,manufacturer=Flashline,product=GM-Box QEMU,serial=E2E-0001",
		"-drive", "file=" + disk + ",if=none,id=d0,format=raw",
		"-device", "virtio-blk-pci,drive=d0,serial=E2EDISK",
		"-device", "virtio-keyboard-pci",
		"-qmp", "unix:" + qmpPath + ",server=on,wait=off",
	}
	if cfg.Modem != nil {
		ln, err := net.Listen("unix", modemPath)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					stop := context.AfterFunc(ctx, func() { c.Close() })
					defer stop()
					_ = cfg.Modem(ctx, c)
				}()
			}
		}()
		args = append(args, "-device", "qemu-xhci", "-chardev", "socket,id=modem,path="+modemPath,
			"-device", "usb-serial,chardev=modem")
	}
	cmd := exec.CommandContext(ctx, "flock", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	var q *qmpClient
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		console.WriteString(line + "\n")
		if q == nil {
			q, _ = dialQMP(qmpPath) // QEMU made it before printing anything
		}
		if cfg.OnLine != nil && q != nil {
			cfg.OnLine(line, q)
		}
		if cfg.Done != nil && cfg.Done(console.String()) {
			if q != nil {
				_ = q.exec("quit", nil)
			}
			break
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if q != nil {
		q.close()
	}
	t.Logf("guest ran %s (%v)", time.Since(start).Round(time.Second), err)
	return console.String()
}

// qmpClient speaks just enough QMP to press keys and quit.
type qmpClient struct {
	c  net.Conn
	r  *bufio.Reader
	mu sync.Mutex
}

func dialQMP(path string) (*qmpClient, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	q := &qmpClient{c: c, r: bufio.NewReader(c)}
	if _, err := q.r.ReadString('\n'); err != nil { // greeting
		c.Close()
		return nil, err
	}
	if err := q.exec("qmp_capabilities", nil); err != nil {
		c.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmpClient) exec(cmd string, args any) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	_ = q.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := q.c.Write(append(b, '\n')); err != nil {
		return err
	}
	for {
		line, err := q.r.ReadString('\n')
		if err != nil {
			if cmd == "quit" {
				return nil
			}
			return err
		}
		var resp struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(line), &resp) != nil {
			continue
		}
		if resp.Error != nil {
			return fmt.Errorf("qmp %s: %s", cmd, resp.Error.Desc)
		}
		if resp.Return != nil {
			return nil
		}
	}
}

func (q *qmpClient) close() { q.c.Close() }

// pressKey presses and releases one key (QEMU qcode) for 150 ms.
func (q *qmpClient) pressKey(qcode string) error {
	return q.exec("send-key", map[string]any{
		"keys":      []map[string]string{{"type": "qcode", "data": qcode}},
		"hold-time": 150,
	})
}

// summary reads the operator console's final summary: "NAME: all N steps
// passed", or "FAILED STEP: ..." and "REASON: ..." lines. (The --json output
// that follows can be interleaved with init's own messages on the serial
// console, so the summary is what the tests rely on.)
func summary(console string) (res scenarioResult, ok bool) {
	for _, l := range strings.Split(strings.ReplaceAll(console, "\r", ""), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.Contains(l, ": all ") && strings.HasSuffix(l, " steps passed"):
			return scenarioResult{Status: "pass"}, true
		case strings.HasPrefix(l, "FAILED STEP:"):
			res.Status = "fail"
			res.FailedStep = strings.TrimSpace(strings.TrimPrefix(l, "FAILED STEP:"))
		case strings.HasPrefix(l, "REASON:") && res.Status == "fail":
			res.Reason = strings.TrimSpace(strings.TrimPrefix(l, "REASON:"))
			return res, true
		}
	}
	return scenarioResult{}, false
}

type scenarioResult struct {
	Status     string
	FailedStep string
	Reason     string
}
