//go:build e2e

package linehost

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flashline/flashline/scripts/line"
	"github.com/flashline/flashline/testbed/qemu"
)

// The device of the page's step 8, with the names the page uses for it: the page's commands
// then run with nothing substituted.
const (
	deviceSerial  = "SERIAL"
	deviceMAC     = "aa:bb:cc:dd:ee:ff"
	deviceProduct = "GM-Box QEMU" // the page's rule matches "GM-Box*"
	serverURL     = "http://10.77.0.1:8080"
)

// What the host may not have before the test: it installs the package and lays the host out
// where the page says, and removes all of it afterwards.
var hostPaths = []string{"/etc/flashline", "/srv/flashline", "/var/lib/flashline"}

// said holds the page to what it says a block prints: the block is found by a piece of its
// text, and its output must match every pattern.
var said = []struct {
	block string
	out   []string
}{
	// Step 3: "lists what is still missing: at this point the kernel and the initramfs".
	{"-interface eth1     # or -mode full", []string{`(?m)^created +/srv/flashline/tftp/pxelinux\.0$`, `(?m)^created +/etc/flashline/keys/operator\.key$`,
		`still to do before serving`, `(?m)^  .*tftp/vmlinuz.*does not exist$`, `(?m)^  .*tftp/initrd\.gz.*does not exist$`}},
	// Step 4: the boot loaders "unchanged", vmlinuz and initrd.gz "created", the key kept.
	{"-kernel vmlinuz-* -initrd initrd.gz", []string{`(?m)^unchanged +/srv/flashline/tftp/pxelinux\.0$`, `(?m)^created +/srv/flashline/tftp/vmlinuz$`,
		`(?m)^created +/srv/flashline/tftp/initrd\.gz$`, `(?m)^kept +/etc/flashline/keys/operator\.key$`}},
	// Step 6: exit status 0 (the block runs with set -e) and nothing to report.
	{"flashline-server check -config /etc/flashline/server.yaml", []string{`(?m)^/etc/flashline/server\.yaml: ok$`}},
}

type variant struct {
	name string
	// replace are the page's own alternatives ("-mode proxy  # or -mode full"): each from
	// must occur in the page's line-host blocks, and to in the page's text.
	replace [][2]string
	plant   bool // the plant's DHCP server (no PXE) hands out the addresses
}

func TestLineHostPageProxyDHCP(t *testing.T) {
	runPage(t, variant{name: "proxy", plant: true})
}

func TestLineHostPageFullDHCP(t *testing.T) {
	runPage(t, variant{name: "full", replace: [][2]string{{"-mode proxy", "-mode full"}}})
}

func runPage(t *testing.T, v variant) {
	start := time.Now()
	if os.Geteuid() != 0 {
		t.Skip("needs root: installs the Debian package and makes network namespaces (CI runs as root)")
	}
	repo, err := qemu.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	preconditions(t, repo)
	pageText, err := os.ReadFile(filepath.Join(repo, "docs", "line-host.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := ParseBlocks(pageText)
	if err != nil {
		t.Fatalf("docs/line-host.md:\n%v", err)
	}
	for _, r := range v.replace {
		if !bytes.Contains(pageText, []byte(r[0])) || !bytes.Contains(pageText, []byte(r[1])) {
			t.Fatalf("the page no longer offers %q as the alternative of %q", r[1], r[0])
		}
	}
	logf := func(format string, args ...any) { t.Logf(strings.TrimRight(format, "\n"), args...) }

	work := t.TempDir()
	build := filepath.Join(work, "build") // the build machine's checkout
	home := filepath.Join(work, "linehost")
	state := filepath.Join(work, "state") // the shims' journal and pids
	shims := filepath.Join(work, "bin")
	logs := filepath.Join(work, "logs")
	for _, d := range []string{home, state, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	keepLogs(t, state, logs)
	if err := checkout(repo, build); err != nil {
		t.Fatal(err)
	}
	// What the engineer brings to the line host (step 5): the image and the scenario.
	if err := copyFile(filepath.Join(repo, "out", "firmware", "firmware.img.zst"), filepath.Join(home, "gm-box-os-1.4.img.zst")); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(repo, "scripts", "e2e", "linehost", "testdata", "gm-box.yaml"), filepath.Join(home, "gm-box.yaml")); err != nil {
		t.Fatal(err)
	}

	ns := fmt.Sprintf("fldoc-%d", os.Getpid())
	if err := writeShims(shims, filepath.Join(work, "qemu"), ns); err != nil {
		t.Fatal(err)
	}
	lab, err := newLineNet(ns, v.plant)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	if v.plant {
		plant, err := startPlantDHCP(lab.plantNS, "eth0", net.IPv4(10, 77, 0, 254), logf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(plant.Close)
	}
	// Whatever happens, the host ends as it began: no service left running, the package
	// purged, the line host's files gone.
	t.Cleanup(func() { cleanHost(t, state) })

	env := append(os.Environ(),
		"PATH="+shims+":"+os.Getenv("PATH")+":/usr/local/go/bin",
		"DOCTEST_LINEHOST_HOME="+home, "DOCTEST_STATE="+state,
		"DEBIAN_FRONTEND=noninteractive", "NO_COLOR=1")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	var passed bool
	var outputs []string
	for i, b := range blocks {
		text := b.Text
		if b.Where == LineHost {
			for _, r := range v.replace {
				text = strings.ReplaceAll(text, r[0], r[1])
			}
		}
		name := fmt.Sprintf("block%02d-line%d-%s", i, b.Line, b.Where)
		t0 := time.Now()
		switch b.Where {
		case Skip:
			logf("docs/line-host.md:%d: skipped (%s)", b.Line, b.Args[0])
			continue
		case Config:
			if err := mergeInto(b.Args[0], b.Text); err != nil {
				t.Fatalf("docs/line-host.md:%d: %v", b.Line, err)
			}
		case Build:
			out, err := runBlock(ctx, exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", text), build, env, filepath.Join(logs, name+".log"))
			if err != nil {
				t.Fatalf("docs/line-host.md:%d (build machine): %v\n%s", b.Line, err, out)
			}
		case LineHost:
			if b.After("device-passed") && !passed {
				provision(ctx, t, lab, work, logs, logf)
				passed = true
			}
			out, err := runBlock(ctx, exec.CommandContext(ctx, "ip", "netns", "exec", ns, "bash", "-euo", "pipefail", "-c", text), home, env, filepath.Join(logs, name+".log"))
			if err != nil {
				t.Fatalf("docs/line-host.md:%d (line host): %v\n%s", b.Line, err, out)
			}
			outputs = append(outputs, out)
			for _, c := range said {
				if !strings.Contains(b.Text, c.block) {
					continue
				}
				for _, re := range c.out {
					if !regexp.MustCompile(re).MatchString(out) {
						t.Errorf("docs/line-host.md:%d: the output does not match %s, as the page says it does:\n%s", b.Line, re, out)
					}
				}
			}
		}
		logf("docs/line-host.md:%d: %s block done in %.1fs", b.Line, b.Where, time.Since(t0).Seconds())
	}
	for _, c := range said {
		if !bytes.Contains(pageText, []byte(c.block)) {
			t.Errorf("the page has no block with %q any more: update this test's said table", c.block)
		}
	}
	if !passed {
		t.Fatal("the page has no block to run after the device passed: nothing was provisioned")
	}
	last := outputs[len(outputs)-1]
	// export -format csv: a header and the device's passed run.
	if !regexp.MustCompile(`(?m)^run,[^,]*,` + deviceSerial + `,` + deviceMAC + `,pass,`).MatchString(last) {
		t.Fatalf("the export of step 8 shows no passed run of %s:\n%s", deviceSerial, last)
	}
	serverLogChecks(t, ctx, ns, env, home, state, string(pageText), v)
	t.Logf("docs/line-host.md (%s DHCP) followed to a provisioned device in %s", v.name, time.Since(start).Round(time.Second))
}

// preconditions skips or fails before the test touches anything.
func preconditions(t *testing.T, repo string) {
	t.Helper()
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "flashline-server").Output(); bytes.Contains(out, []byte("installed")) {
		t.Fatal("flashline-server is installed on this machine: not touching it")
	}
	for _, p := range hostPaths {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists: this machine looks like a line host; not touching it", p)
		}
	}
	for _, pkg := range []string{"pxelinux", "syslinux-common", "syslinux-efi"} {
		// The line host's namespace has no way out: apt-get cannot fetch the package's
		// dependencies there.
		if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output(); !bytes.Contains(out, []byte("install ok installed")) {
			t.Fatalf("%s is not installed (apt-get install %s): the package depends on it", pkg, pkg)
		}
	}
	for _, cmd := range []string{"curl", "setpriv", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	for _, p := range []string{filepath.Join(repo, "out", "firmware", "firmware.img.zst")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v: run `make firmware` first", err)
		}
	}
	if _, err := qemu.DefaultKernel(); err != nil {
		t.Fatal(err)
	}
}

// checkout copies the repository's files (tracked and new, not ignored ones: no out/, no
// initrd.gz) to dir, the build machine's fresh checkout.
func checkout(repo, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("bash", "-c", `git ls-files -z -c -o --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$0"`, dir)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("copy the checkout: %v: %s", err, out)
	}
	return nil
}

func runBlock(ctx context.Context, cmd *exec.Cmd, dir string, env []string, logPath string) (string, error) {
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A block's background children (the service the systemctl stand-in starts) must not
	// keep the test waiting on its output.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	_ = os.WriteFile(logPath, out.Bytes(), 0o644)
	return out.String(), err
}

func mergeInto(path, snippet string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	merged, err := MergeConfig(b, []byte(snippet))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, merged, 0o644)
}

// provision is step 8's "power on a device": a QEMU GM-Box with its eMMC (an SD card on an
// SDHCI controller), PXE first, on the line network. It must show the agent finding the
// server, pass, reboot, and at the next power-on get LOCALBOOT from the server.
func provision(ctx context.Context, t *testing.T, lab *lineNet, work, logs string, logf func(string, ...any)) {
	t.Helper()
	disk := filepath.Join(work, "emmc.raw")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	// QEMU's SD cards come in powers of two; 16 GiB is above the rule's 16 GB, sparse.
	if err := f.Truncate(16 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// The device boots what the server's TFTP root holds; the harness only insists that some
	// kernel and initrd exist: the installed ones.
	kernel, initrd := "/srv/flashline/tftp/vmlinuz", "/srv/flashline/tftp/initrd.gz"
	opts := func(name string, timeout time.Duration) qemu.Options {
		return qemu.Options{
			Name: name, Mode: qemu.PXEBIOS, MemoryMiB: 512, MAC: deviceMAC, Kernel: kernel, Initrd: initrd,
			QEMU:   filepath.Join(work, "qemu", "qemu-system-x86_64"),
			Net:    qemu.Netdev{Args: "tap,ifname=" + lab.tap + ",script=no,downscript=no"},
			SMBIOS: &qemu.SMBIOS{Manufacturer: "Flashline", Product: deviceProduct, Serial: deviceSerial},
			Extra: []string{
				"-drive", "file=" + disk + ",if=none,id=emmc,format=raw",
				"-device", "sdhci-pci", "-device", "sd-card,drive=emmc",
			},
			Timeout: timeout, LogDir: logs, LockPath: filepath.Join(work, "qemu-private.lock"),
			LockWait: func(holder string) { logf("waiting for the QEMU lock held by %s", holder) },
		}
	}
	// Both boots under one hold of the machine's QEMU lock, so that no other guest slips in
	// between the power cycle; each boot then takes a private lock.
	lock, err := os.OpenFile(qemu.LockPath, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	logf("waiting for the machine's QEMU lock")
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("QEMU lock: %v", err)
	}
	_ = lock.Truncate(0)
	_, _ = fmt.Fprintf(lock, "line-host page test (pid %d)\n", os.Getpid())
	logf("power on %s (PXE, %s, eMMC on SDHCI)", deviceSerial, deviceMAC)
	vm, err := qemu.Start(ctx, opts("boot1", 20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	// The page's step 8: the console shows the agent naming the server, after its DHCP.
	steps := append(line.FirstBoot()[:5:5], line.WatchStep{Name: "agent found the server", Re: regexp.MustCompile(regexp.QuoteMeta("line server: " + serverURL)), Timeout: 3 * time.Minute})
	steps = append(steps, line.FirstBoot()[5:]...)
	if _, err := line.Watch(ctx, vm, steps, nil, logf); err != nil {
		t.Fatal(err)
	}
	verdict, err := vm.Expect(ctx, regexp.MustCompile(`flashline: OK +PASS$|flashline: FAIL +FAIL$`), 15*time.Minute)
	if err != nil {
		t.Fatalf("waiting for PASS: %v (console %s)", err, vm.LogPath())
	}
	if !strings.HasSuffix(verdict, "PASS") {
		t.Fatalf("the device failed: %s (console %s)", verdict, vm.LogPath())
	}
	logf("  %-28s at %6.1fs", "PASS", vm.Elapsed().Seconds())
	select {
	case <-vm.Done():
	case <-time.After(2 * time.Minute):
		t.Fatalf("the device did not reboot after PASS (console %s)", vm.LogPath())
	}
	_ = vm.Wait()
	vm2, err := qemu.Start(ctx, opts("boot2", 5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer vm2.Kill()
	if _, err := vm2.Expect(ctx, regexp.MustCompile(`Booting from local disk`), 4*time.Minute); err != nil {
		t.Fatalf("second power-on: no LOCALBOOT from the server: %v (console %s)", err, vm2.LogPath())
	}
	logf("  %-28s after %6.1fs", "LOCALBOOT at the next boot", vm2.Elapsed().Seconds())
	vm2.Kill()
	_ = vm2.Wait()
}

// serverLogChecks holds the page's step 7 to its word: the log lines it names, component= on
// every line, the dashboard, and `systemctl stop` logging the shutdown.
func serverLogChecks(t *testing.T, ctx context.Context, ns string, env []string, home, state, page string, v variant) {
	t.Helper()
	mode := "proxy"
	if !v.plant {
		mode = "full"
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "curl", "-fsS", "-o", "/dev/null", "-w", "%{http_code}", serverURL+"/")
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "200" {
		t.Errorf("the dashboard at %s/: %v %s", serverURL, err, out)
	}
	// Step 1: the service runs as flashline with CAP_NET_BIND_SERVICE and CAP_NET_RAW only.
	if b, err := os.ReadFile(filepath.Join(state, "flashline-server.pid")); err != nil {
		t.Errorf("no pid of the service: %v", err)
	} else if st, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/status"); err != nil {
		t.Errorf("the service is not running: %v", err)
	} else {
		u, _ := exec.Command("id", "-u", "flashline").Output()
		for _, want := range []string{"Uid:\t" + strings.TrimSpace(string(u)) + "\t", "CapEff:\t0000000000002400", "CapBnd:\t0000000000002400"} {
			if !strings.Contains(string(st), want) {
				t.Errorf("the service's /proc status lacks %q (user flashline, net_bind_service+net_raw):\n%s", want, st)
			}
		}
	}
	// Step 6: server.yaml names the installed schema on its first line.
	const schemaLine = "# yaml-language-server: $schema=/usr/share/flashline/server.schema.json"
	if b, err := os.ReadFile("/etc/flashline/server.yaml"); err != nil || !strings.HasPrefix(string(b), schemaLine+"\n") {
		t.Errorf("/etc/flashline/server.yaml does not start with %q (%v)", schemaLine, err)
	}
	if _, err := os.Stat("/usr/share/flashline/server.schema.json"); err != nil {
		t.Errorf("the package has no schema: %v", err)
	}
	stop := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "systemctl", "stop", "flashline-server")
	if out, err := runBlock(ctx, stop, home, env, filepath.Join(state, "stop.log")); err != nil {
		t.Errorf("systemctl stop: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(state, "flashline-server.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	page = strings.Join(strings.Fields(page), " ") // the phrases may wrap
	for _, c := range []struct{ page, log string }{
		{"`http listening`", `msg="http listening"`},
		{"`tftp listening`", `msg="tftp listening"`},
		{"`dhcp listening mode=proxy`", `msg="dhcp listening" mode=` + mode},
		{"one line per image with its SHA-256", `msg=image name=gm-box-os .*sha256=[0-9a-f]{64}`},
		{"`jobs are signed key_id=...`", `msg="jobs are signed" .*key_id=`},
		{"logs `shutting down`", `msg="shutting down`},
	} {
		if !strings.Contains(page, c.page) {
			t.Errorf("the page no longer says %s: update this test with it", c.page)
		}
		if !regexp.MustCompile(c.log).MatchString(log) {
			t.Errorf("the page says %s; the server's log has no line matching %s", c.page, c.log)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if !strings.Contains(l, "component=") {
			t.Errorf("a log line without component=: %s", l)
		}
	}
}

// cleanHost stops the service if the test left it running, purges the package and removes
// what init laid out under /srv (the package leaves it, as the site's data).
func cleanHost(t *testing.T, state string) {
	pidFile := filepath.Join(state, "flashline-server.pid")
	if b, err := os.ReadFile(pidFile); err == nil {
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := exec.Command("dpkg-query", "-W", "flashline-server").Run(); err == nil {
		if out, err := exec.Command("dpkg", "--purge", "flashline-server").CombinedOutput(); err != nil {
			t.Errorf("dpkg --purge flashline-server: %v: %s", err, out)
		}
	}
	for _, p := range hostPaths {
		if err := os.RemoveAll(p); err != nil {
			t.Errorf("remove %s: %v", p, err)
		}
	}
}

// keepLogs copies the blocks' output, the server's log and the consoles somewhere that
// survives a failed test.
func keepLogs(t *testing.T, state, logs string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir := filepath.Join(os.TempDir(), "flashline-linehost-logs", t.Name())
		_ = os.MkdirAll(dir, 0o755)
		for _, d := range []string{state, logs} {
			entries, _ := os.ReadDir(d)
			for _, e := range entries {
				if b, err := os.ReadFile(filepath.Join(d, e.Name())); err == nil && !e.IsDir() {
					_ = os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
				}
			}
		}
		fmt.Fprintf(os.Stderr, "line-host page logs kept in %s\n", dir)
	})
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// lineNet is the line network: a namespace whose bridge eth1 (no address: the page's step 2
// gives it one) joins the device's tap and, for the proxy setup, a veth to a second
// namespace holding the plant's DHCP server.
type lineNet struct {
	ns, plantNS, tap string
}

func newLineNet(ns string, plant bool) (*lineNet, error) {
	l := &lineNet{ns: ns, tap: "fltap0"}
	_ = exec.Command("ip", "netns", "del", ns).Run() // a leftover of a killed run
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "link", "add", "eth1", "type", "bridge", "forward_delay", "0"},
		{"ip", "-n", ns, "tuntap", "add", "dev", l.tap, "mode", "tap"},
		{"ip", "-n", ns, "link", "set", l.tap, "master", "eth1"},
		{"ip", "-n", ns, "link", "set", l.tap, "up"},
	}
	if plant {
		l.plantNS = ns + "-plant"
		_ = exec.Command("ip", "netns", "del", l.plantNS).Run()
		steps = append(steps,
			[]string{"ip", "netns", "add", l.plantNS},
			[]string{"ip", "-n", ns, "link", "add", "flplant", "type", "veth", "peer", "name", "eth0", "netns", l.plantNS},
			[]string{"ip", "-n", ns, "link", "set", "flplant", "master", "eth1"},
			[]string{"ip", "-n", ns, "link", "set", "flplant", "up"},
			[]string{"ip", "-n", l.plantNS, "link", "set", "lo", "up"},
			[]string{"ip", "-n", l.plantNS, "addr", "add", "10.77.0.254/24", "dev", "eth0"},
			[]string{"ip", "-n", l.plantNS, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			l.Close()
			return nil, fmt.Errorf("line network: %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return l, nil
}

func (l *lineNet) Close() {
	for _, n := range []string{l.plantNS, l.ns} {
		if n != "" {
			_ = exec.Command("ip", "netns", "del", n).Run()
		}
	}
}
