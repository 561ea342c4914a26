// Package bootstrap is the first part of the agent's run on a netbooted device: it reads the
// kernel command line, mounts what init did not, loads the kernel modules for the hardware
// present, brings the boot NIC up with DHCP and names the line server, printing each step on
// the console. What follows (inventory, hello, the job) takes the Env it returns.
package bootstrap

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/cmdline"
	"github.com/flashline/flashline/agent/console"
	"github.com/flashline/flashline/agent/kmod"
	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/agent/netup"
	"github.com/flashline/flashline/agent/sysinit"
	"github.com/flashline/flashline/internal/buildinfo"
	"github.com/flashline/flashline/protocol"
)

// Version returns the agent's version (the git commit it was built from), as sent in hello.
func Version() string { return buildinfo.Get().Version }

// Options control Boot.
type Options struct {
	// Server overrides flashline.server from the kernel command line (run --server).
	Server string
	// Console receives progress; nil means standard output.
	Console *console.Console
	// Device forces (true) or forbids (false) the device steps (mounts, modules, DHCP);
	// nil decides by whether / is an initramfs.
	Device *bool
	// Cmdline is the kernel command line to parse; empty means /proc/cmdline.
	Cmdline string
}

// NIC is the configured network interface.
type NIC struct {
	Name string
	MAC  net.HardwareAddr
	IP   net.IPNet
}

// Env is what the rest of the journey starts from.
type Env struct {
	Version string
	Params  cmdline.Params
	// Server is the line server's base URL; empty when neither the command line nor --server
	// named one.
	Server  string
	NIC     NIC
	Console *console.Console
	// Device is true on a netbooted device (the agent owns the machine).
	Device bool
	// Modules is what module loading did (empty off-device).
	Modules kmod.Report
	// Loader loads further modules by name (scenario steps: mac80211_hwsim, hci_vhci ...),
	// with parameters from the kernel command line.
	Loader *kmod.Loader
	// Timings are the boot phases measured, for the server's statistics.
	Timings []protocol.PhaseTiming
}

// Boot runs the device's boot steps. It returns an error only when ctx ends or a step cannot
// go on at all; each retryable problem is retried inside (the network waits for DHCP forever).
func Boot(ctx context.Context, opts Options) (*Env, error) {
	con := opts.Console
	if con == nil {
		con = console.New(os.Stdout)
	}
	env := &Env{Version: Version(), Console: con}
	env.Device = sysinit.InInitramfs()
	if opts.Device != nil {
		env.Device = *opts.Device
	}
	// "flashline-agent VERSION starting" is what the QEMU tests and line operators look for;
	// the build date and Go follow in the parentheses.
	bi := buildinfo.Get()
	built := bi.Go
	if bi.Date != "" {
		built = "built " + bi.Date + ", " + bi.Go
	}
	con.Infof("flashline-agent %s starting (pid %d, %s; %s)", bi.Version, os.Getpid(), map[bool]string{true: "netbooted device", false: "host mode: no mounts, modules or DHCP"}[env.Device], built)

	start := time.Now()
	phase := func(name string, t0 time.Time) {
		env.Timings = append(env.Timings, protocol.PhaseTiming{Phase: name, DurationMS: time.Since(t0).Milliseconds()})
	}

	// 1. Mounts first: /proc/cmdline needs /proc.
	if env.Device {
		done, err := sysinit.Setup()
		if err != nil {
			con.Warnf("mounts: %v", err)
		} else if len(done) > 0 {
			con.Infof("mounted %s", strings.Join(done, " "))
		}
	}

	if env.Device {
		if up, ok := uptime(); ok {
			// Firmware, PXE and the kernel up to this process: the time since the kernel started.
			env.Timings = append(env.Timings, protocol.PhaseTiming{Phase: "kernel", DurationMS: up.Milliseconds()})
			con.Infof("kernel up for %.1fs", up.Seconds())
		}
	}

	// 2. Kernel command line.
	var p cmdline.Params
	var err error
	if opts.Cmdline != "" {
		p, err = cmdline.Parse(opts.Cmdline)
	} else {
		p, err = cmdline.Read()
	}
	if err != nil {
		con.Warnf("kernel command line: ignoring %v", err)
	}
	env.Params = p
	env.Server = p.Server
	if opts.Server != "" {
		s, err := cmdline.ParseServerURL(opts.Server)
		if err != nil {
			return env, fmt.Errorf("--server: %w", err)
		}
		env.Server = s
	}
	env.Loader = &kmod.Loader{Root: "/", Params: p.ModuleParams}
	if !env.Device {
		env.Server = orDefault(env.Server)
		phase("boot", start)
		return env, nil
	}

	// 3. Kernel modules.
	t0 := time.Now()
	if err := loadModules(ctx, env); err != nil {
		return env, err
	}
	phase("modules", t0)

	// 4. Network.
	t0 = time.Now()
	res, err := netup.Up(ctx, netup.Config{
		Iface:   p.Iface,
		BootIF:  p.BootIF,
		Links:   netup.System{},
		DHCP:    netup.Client{},
		Backoff: &lineclient.Backoff{Min: time.Second, Max: 30 * time.Second},
		Console: con,
	})
	if err != nil {
		return env, err
	}
	phase("dhcp", t0)
	env.NIC = NIC{Name: res.Link.Name, MAC: res.Link.MAC, IP: res.Lease.Addr}
	con.OKf("flashline-agent %s up on %s %s, %s", env.Version, env.NIC.Name, env.NIC.MAC, env.NIC.IP.IP)
	if env.Server == "" {
		// A device on a real line never falls back to QEMU's host address: it keeps looking,
		// saying what it looked for, until a server is found or it is switched off.
		env.Server, err = waitForServer(ctx, con, &lineclient.Backoff{Min: 5 * time.Second, Max: time.Minute},
			func(ctx context.Context) string { return discoverServer(ctx, con, p, res) })
		if err != nil {
			return env, err
		}
	}
	con.Infof("line server: %s", env.Server)
	phase("boot", start)
	return env, nil
}

// DefaultServer is used, off a device only (flashline-agent run on a development host), when
// nothing names the line server: QEMU user networking's host address. A device never uses it
// (see waitForServer).
const DefaultServer = "http://10.0.2.2:8080"

func orDefault(s string) string {
	if s == "" {
		return DefaultServer
	}
	return s
}

func loadModules(ctx context.Context, env *Env) error {
	con, p := env.Console, env.Params
	l := env.Loader
	if p.NoModules {
		con.Infof("modules: automatic loading off (flashline.nomodules); loading %s", strings.Join(append(kmod.AlwaysLoad(), p.Modules...), " "))
		err := l.Load(ctx, append(kmod.AlwaysLoad(), p.Modules...)...)
		if err != nil && ctx.Err() != nil {
			return err
		}
		if err != nil {
			con.Warnf("modules: %v", err)
		}
		return nil
	}
	con.Infof("modules: matching devices against modules.alias")
	rep, err := l.Probe(ctx, p.Modules...)
	env.Modules = rep
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		// No module tree (a kernel with everything built in, or a broken initramfs): say so
		// and carry on; the network step will tell whether it matters.
		con.Warnf("modules: %v", err)
		return nil
	}
	for m, e := range rep.Failed {
		con.Warnf("modules: %s: %v", m, e)
	}
	con.OKf("modules: %d loaded for %d devices in %d rounds", len(rep.Loaded), rep.Devices, rep.Rounds)
	// The inventory (and with it the job's flash target) must see the eMMC.
	if waited, missing := kmod.WaitMMC(ctx, cmp.Or(l.Root, "/"), mmcWait); len(missing) > 0 {
		con.Warnf("modules: no ready card on %s after %s (an empty SD slot?)", strings.Join(missing, ", "), waited.Round(100*time.Millisecond))
	} else if waited > 100*time.Millisecond {
		con.Infof("modules: eMMC/SD card ready after %s", waited.Round(100*time.Millisecond))
	}
	return nil
}

// mmcWait bounds the wait for eMMC/SD cards after the modules are in: a card initialises in
// well under a second on hardware, in a few under emulation.
const mmcWait = 5 * time.Second

// uptime reads /proc/uptime.
func uptime() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	d, err := time.ParseDuration(f[0] + "s")
	return d, err == nil
}
