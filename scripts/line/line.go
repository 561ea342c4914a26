// Package line runs a whole production line on one machine for the demo and the journey's
// end-to-end tests: the reference server (DHCP, TFTP, HTTP, results) on a private network
// namespace, and a QEMU GM-Box on a tap in it, with its Wi-Fi, Bluetooth, LTE modem and power
// button emulated. The device netboots from the server, is tested, flashed, power-cycled, and
// must then boot its new firmware from disk.
//
// Everything here runs inside the namespace: callers use Enter, which re-executes the current
// program there (the server's sockets, QEMU's tap and the fake modem then all live inside).
package line

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flashline/flashline/internal/buildinfo"
	"github.com/flashline/flashline/testbed/netlab"
	"github.com/flashline/flashline/testbed/qemu"
)

// NSEnv tells a re-executed program the namespace it runs in and the tap it is to use.
const NSEnv = "FLASHLINE_LINE_TAP"

// TapsEnv lists every tap of the namespace (comma-separated, NSEnv's first) and IfaceEnv the
// interface holding the server's address (the tap, or the bridge of several).
const (
	TapsEnv  = "FLASHLINE_LINE_TAPS"
	IfaceEnv = "FLASHLINE_LINE_IFACE"
)

// ServerBinEnv names the flashline-server binary Enter built before it entered the namespace.
// The namespace has no route out, so nothing may be built or downloaded inside it.
const ServerBinEnv = "FLASHLINE_LINE_SERVER_BIN"

// BuildServer builds flashline-server from the repository at repo into dir, stamped with the
// checkout's version, and returns its path. Call it outside any namespace: the build may need
// the module proxy.
func BuildServer(ctx context.Context, repo, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("line: build flashline-server: %w", err)
	}
	bin := filepath.Join(dir, "flashline-server")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", buildinfo.Stamp(repo), "-o", bin, "./cmds/flashline-server")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("line: build flashline-server: %w\n%s", err, out)
	}
	return bin, nil
}

// Enter makes sure the program runs inside a fresh line namespace. Outside one it creates the
// namespace (with a veth pair when veth is set, for the dashboard), re-executes os.Args there
// with NSEnv set, waits, removes the namespace and returns inside=false with the child's
// error. Inside (NSEnv set) it returns inside=true at once and the caller does the work.
func Enter(ctx context.Context, veth bool, args []string, onLab func(*netlab.Lab)) (inside bool, err error) {
	return EnterN(ctx, veth, 1, args, onLab)
}

// EnterN is Enter with taps taps on one bridge, for a line of several guests at once.
func EnterN(ctx context.Context, veth bool, taps int, args []string, onLab func(*netlab.Lab)) (inside bool, err error) {
	if os.Getenv(NSEnv) != "" {
		return true, nil
	}
	repo, err := qemu.RepoRoot()
	if err != nil {
		return false, err
	}
	bin, err := BuildServer(ctx, repo, filepath.Join(repo, "out", "bin"))
	if err != nil {
		return false, err
	}
	lab, err := netlab.New(ctx, netlab.Config{NS: fmt.Sprintf("flline-%d", os.Getpid()), Veth: veth, Taps: taps})
	if err != nil {
		return false, err
	}
	defer lab.Close()
	if onLab != nil {
		onLab(lab)
	}
	cmd := lab.Command(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), NSEnv+"="+lab.Tap, TapsEnv+"="+strings.Join(lab.Taps, ","), IfaceEnv+"="+lab.Iface,
		"FLASHLINE_LINE_SERVER_IP="+lab.ServerIP(), ServerBinEnv+"="+bin)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return false, cmd.Run()
}

// Config describes the line.
type Config struct {
	Repo     string // repository root
	Work     string // working directory: tftp/, images/, scenarios/, data/, logs
	Kernel   string
	Initrd   string // the agent's initrd with the testbed emulators (flashline-testbed)
	Firmware string // directory with firmware.img.zst/.xz and firmware.img.json (mkfirmware)
	Image    string // published file to serve, e.g. firmware.img.zst
	Scenario string // scenario file for the device
	KeyFile  string // operator private key; empty: unsigned development mode
	Serial   string // the device's DMI serial
	Product  string
	Memory   int // MiB
	// CutImageAfter, when positive, puts a proxy in front of the images that cuts the first
	// download after that many bytes (the agent must resume with a Range request).
	CutImageAfter int64
	// WhileTesting sets the rule's flash: {while_testing: true}: the device writes the image
	// while its scenario runs.
	WhileTesting bool
	// Swarm enables the server's BitTorrent swarm (swarm: {enabled: true}) with SwarmLinger
	// (the server's default when zero).
	Swarm       bool
	SwarmLinger time.Duration
	// LineName is the server's line: name, stamped on every run; empty leaves the default.
	LineName string
	// Stations is a YAML list put under the server's stations: key, indented as items of it
	// (each line starting "  - " or "    "); empty configures none.
	Stations string
	// LLDP, when set, makes the line's network announce this switch port on the tap every
	// LLDPInterval (default 2s), as the port the device is plugged into would: the agent
	// hears it on its boot NIC and the server maps it to a station.
	LLDP         *netlab.LLDPPort
	LLDPInterval time.Duration
	// Printf receives the line's progress (phases, timings); nil is silent.
	Printf func(format string, args ...any)
}

// Line is a running server on the line network.
type Line struct {
	cfg     Config
	tap     string
	taps    []string
	iface   string // where the server's address is: DHCP and TFTP listen there
	ip      string
	bin     string // flashline-server binary
	cfgPath string
	server  *exec.Cmd
	srvLog  *os.File
	waitErr chan error
	mu      sync.Mutex
	start   time.Time
	cut     *cutter
	// stopLLDP stops the switch port's announcer and says how many frames it sent.
	stopLLDP func() int
}

// Manifest is what mkfirmware writes beside the published images.
type Manifest struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Start prepares the server's directories and starts it. Call it inside the namespace.
func Start(ctx context.Context, cfg Config) (*Line, error) {
	tap := os.Getenv(NSEnv)
	if tap == "" {
		return nil, errors.New("line: not inside a line namespace (use line.Enter)")
	}
	ip := os.Getenv("FLASHLINE_LINE_SERVER_IP")
	l := &Line{cfg: cfg, tap: tap, taps: []string{tap}, iface: tap, ip: ip, start: time.Now()}
	if v := os.Getenv(TapsEnv); v != "" {
		l.taps = strings.Split(v, ",")
	}
	if v := os.Getenv(IfaceEnv); v != "" {
		l.iface = v
	}
	if cfg.Printf == nil {
		l.cfg.Printf = func(string, ...any) {}
	}
	if err := l.prepare(ctx); err != nil {
		return nil, err
	}
	if err := l.startServer(ctx); err != nil {
		return nil, err
	}
	if cfg.CutImageAfter > 0 {
		c, err := startCutter(l.ip+":8081", l.URL(), cfg.CutImageAfter)
		if err != nil {
			l.Close()
			return nil, err
		}
		l.cut = c
	}
	if cfg.LLDP != nil {
		every := cmp.Or(cfg.LLDPInterval, 2*time.Second)
		// The announcer outlives Start's ctx only as long as the line: Close stops it.
		stop, err := netlab.AnnounceLLDP(context.WithoutCancel(ctx), l.tap, *cfg.LLDP, every)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("line: %w", err)
		}
		l.stopLLDP = stop
		l.cfg.Printf("the line switch announces %s port %q by LLDP on %s every %s\n", cfg.LLDP.SystemName, cfg.LLDP.PortID, l.tap, every)
	}
	return l, nil
}

// ImageCuts is how many image downloads the cutting proxy cut.
func (l *Line) ImageCuts() int {
	if l.cut == nil {
		return 0
	}
	return l.cut.Cuts()
}

// URL is the server's base URL on the line network.
func (l *Line) URL() string { return "http://" + l.ip + ":8080" }

// Tap is the tap device the device's NIC must use.
func (l *Line) Tap() string { return l.tap }

// Taps are all the line's taps, one per guest that may run at once (Tap first).
func (l *Line) Taps() []string { return l.taps }

// ServerLog is the server's log file.
func (l *Line) ServerLog() string { return filepath.Join(l.cfg.Work, "server.log") }

func (l *Line) dir(p ...string) string { return filepath.Join(append([]string{l.cfg.Work}, p...)...) }

func (l *Line) prepare(ctx context.Context) error {
	for _, d := range []string{"tftp", "images", "scenarios", "data", "bin"} {
		if err := os.MkdirAll(l.dir(d), 0o755); err != nil {
			return err
		}
	}
	copies := [][2]string{
		{"/usr/lib/PXELINUX/pxelinux.0", l.dir("tftp", "pxelinux.0")},
		{"/usr/lib/syslinux/modules/bios/ldlinux.c32", l.dir("tftp", "ldlinux.c32")},
		{l.cfg.Kernel, l.dir("tftp", "vmlinuz")},
		{l.cfg.Initrd, l.dir("tftp", "initrd.gz")},
		{filepath.Join(l.cfg.Firmware, l.cfg.Image), l.dir("images", l.cfg.Image)},
		{l.cfg.Scenario, l.dir("scenarios", filepath.Base(l.cfg.Scenario))},
	}
	for _, c := range copies {
		if err := copyFile(c[0], c[1]); err != nil {
			return fmt.Errorf("line: %w", err)
		}
	}
	mb, err := os.ReadFile(filepath.Join(l.cfg.Firmware, "firmware.img.json"))
	if err != nil {
		return fmt.Errorf("line: firmware manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return fmt.Errorf("line: firmware manifest: %w", err)
	}
	l.bin = os.Getenv(ServerBinEnv)
	if l.bin == "" {
		return errors.New("line: no flashline-server binary: " + ServerBinEnv + " is unset (line.Enter builds it before entering the namespace)")
	}
	imagesURL := ""
	if l.cfg.CutImageAfter > 0 {
		imagesURL = fmt.Sprintf("  images_url: \"http://%s:8081/images/\"\n", l.ip)
	}
	swarm := ""
	if l.cfg.Swarm {
		swarm = "swarm: {enabled: true"
		if l.cfg.SwarmLinger > 0 {
			swarm += ", linger: " + l.cfg.SwarmLinger.String()
		}
		swarm += "}\n"
	}
	flashOpts := ""
	if l.cfg.WhileTesting {
		flashOpts = "    flash: {while_testing: true}\n"
	}
	key := ""
	if l.cfg.KeyFile != "" {
		key = "key_file: " + l.cfg.KeyFile + "\n"
	}
	if l.cfg.LineName != "" {
		key += fmt.Sprintf("line: %q\n", l.cfg.LineName)
	}
	if l.cfg.Stations != "" {
		key += "stations:\n" + strings.TrimRight(l.cfg.Stations, "\n") + "\n"
	}
	conf := fmt.Sprintf(`# Written by scripts/line for one demo/test run.
data_dir: %[1]s/data
images_dir: %[1]s/images
scenarios_dir: %[1]s/scenarios
%[2]shttp:
  enabled: true
  listen: ":8080"
  public_url: "http://%[3]s:8080"
%[10]sdhcp:
  enabled: true
  mode: full
  interface: %[4]s
  server_ip: %[3]s
  range_start: 10.77.0.100
  range_end: 10.77.0.150
  subnet: 10.77.0.0/24
  lease_time: 1h
tftp:
  enabled: true
  listen: "%[3]s:69"
  interface: %[4]s
  root: %[1]s/tftp
  pxelinux:
    kernel: vmlinuz
    initrd: initrd.gz
    consoles: ["ttyS0,115200"]
    serial_port: "0 115200"
    extra_args: [%[5]s]
images:
  - name: gm-soft-kit
    file: %[6]s
    sha256: %[7]s
    size: %[8]d
rules:
  - name: QEMU GM-Box
    match:
      macs: ["52:54:00:*"]
    scenario: %[9]s
    image: gm-soft-kit
    target: {transport: virtio}
    after: reboot
%[11]s%[12]s`, l.cfg.Work, key, l.ip, l.iface, testbedArgs(), l.cfg.Image, m.SHA256, m.Size, filepath.Base(l.cfg.Scenario), imagesURL, flashOpts, swarm)
	l.cfgPath = l.dir("server.yaml")
	return os.WriteFile(l.cfgPath, []byte(conf), 0o644)
}

// testbedArgs start the in-guest emulators before the agent: the Wi-Fi AP and the Bluetooth
// control beacon of scenarios/gm-box-qemu.yaml.
func testbedArgs() string {
	// no_timer_check as in testbed/qemu: TCG under load fails the kernel's IO-APIC timer check.
	return `"no_timer_check", "rdinit=/bin/flashline-testbed", "flashline.testbed=\"wifi-ap --ssid LINE-TEST; bt-peer --address C0:FF:EE:00:00:01 --name line-beacon --rssi -47\""`
}

func (l *Line) startServer(ctx context.Context) error {
	f, err := os.OpenFile(l.ServerLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	l.srvLog = f
	cmd := exec.Command(l.bin, "serve", "-config", l.cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("line: start server: %w", err)
	}
	l.server = cmd
	l.waitErr = make(chan error, 1)
	go func() { l.waitErr <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(l.URL() + "/metrics")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-l.waitErr:
			return fmt.Errorf("line: server exited at start (%v); log %s:\n%s", err, l.ServerLog(), tail(l.ServerLog(), 20))
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("line: server did not answer on %s within 60s; log %s", l.URL(), l.ServerLog())
}

// KillServer kills the server with SIGKILL (no chance to flush anything) and starts it again
// on the same data directory.
func (l *Line) KillServer(ctx context.Context) error {
	_ = l.server.Process.Kill()
	<-l.waitErr
	fmt.Fprintf(l.srvLog, "--- line: server killed with SIGKILL, restarting ---\n")
	return l.startServer(ctx)
}

// Close stops the server.
func (l *Line) Close() {
	if l.stopLLDP != nil {
		l.cfg.Printf("the line switch sent %d LLDP frames\n", l.stopLLDP())
		l.stopLLDP = nil
	}
	if l.cut != nil {
		l.cut.Close()
	}
	if l.server != nil && l.server.Process != nil {
		_ = l.server.Process.Signal(syscall.SIGTERM)
		select {
		case <-l.waitErr:
		case <-time.After(5 * time.Second):
			_ = l.server.Process.Kill()
			<-l.waitErr
		}
	}
	if l.srvLog != nil {
		l.srvLog.Close()
	}
}

// Export returns the server's stored runs of serial as JSON (flashline-server export).
func (l *Line) Export(ctx context.Context, serial string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, l.bin, "export", "-config", l.cfgPath, "-serial", serial, "-format", "json")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("export: %v: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("export: %w", err)
	}
	return out, nil
}

// Get fetches path (e.g. "/dashboard/api/line") from the server's HTTP API and decodes its
// JSON answer into v. The test line configures no operators, so the dashboard's views are
// open on the line network.
func (l *Line) Get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL()+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// DropNetwork takes the line network down for d, like a cable pulled and plugged back.
func (l *Line) DropNetwork(ctx context.Context, d time.Duration) error {
	if out, err := exec.CommandContext(ctx, "ip", "link", "set", l.tap, "down").CombinedOutput(); err != nil {
		return fmt.Errorf("drop network: %v: %s", err, out)
	}
	time.Sleep(d)
	if out, err := exec.CommandContext(ctx, "ip", "link", "set", l.tap, "up").CombinedOutput(); err != nil {
		return fmt.Errorf("restore network: %v: %s", err, out)
	}
	return nil
}

// CorruptImage flips one byte in the middle of the served image file, after the server has
// read its hash from the configuration: the device must then refuse the flash.
func (l *Line) CorruptImage() error {
	p := l.dir("images", l.cfg.Image)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	b := make([]byte, 1)
	off := st.Size() / 2
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	return err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// Marker is what the flashed test firmware prints when it has booted.
var Marker = regexp.MustCompile(`GM-SOFT-KIT BOOTED serial=(\S+)`)
