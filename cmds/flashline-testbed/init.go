package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flashline/flashline/agent/cmdline"
	"github.com/flashline/flashline/agent/kmod"
	"golang.org/x/sys/unix"
)

// testbedParam lists the emulators to start, ';'-separated, each a testbed
// subcommand with its flags: flashline.testbed="wifi-ap --ssid X; bt-peer".
const testbedParam = "flashline.testbed"

const readyDir = "/run/flashline-testbed"

// parseSpec splits the flashline.testbed value into commands; only the
// emulator subcommands are allowed.
func parseSpec(spec string) ([][]string, error) {
	var cmds [][]string
	for part := range strings.SplitSeq(spec, ";") {
		f := strings.Fields(part)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "wifi-ap", "bt-peer", "bt-bluez":
		default:
			return nil, fmt.Errorf("%s: unknown emulator %q (want wifi-ap, bt-peer or bt-bluez)", testbedParam, f[0])
		}
		cmds = append(cmds, f)
	}
	return cmds, nil
}

// cmdInit runs as the initramfs' first process (kernel parameter
// rdinit=/bin/flashline-testbed): it starts the emulators named by
// flashline.testbed in the background, waits until they are ready, then
// execs the real /init, which inherits them as orphans. This way the agent
// finds the emulated hardware already present, as on a real device.
func cmdInit(ctx context.Context, args []string) int {
	next := "/init"
	if len(args) > 0 {
		next = args[0]
	}
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/run", "tmpfs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && err != unix.EBUSY {
			fmt.Fprintf(os.Stderr, "testbed init: mount %s: %v\n", m.dst, err)
		}
	}
	defer execNext(next)
	p, err := cmdline.Read()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed init: kernel command line: %v\n", err)
	}
	spec, _ := p.Flag(testbedParam)
	cmds, err := parseSpec(spec)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed init: %v\n", err)
		return 1
	}
	// Load the drivers of the emulated hardware (virtio disk and keyboard,
	// USB serial...) as the agent's own boot would, so that a test running
	// "flashline-agent scenario run" directly finds them.
	if rep, err := kmod.Probe(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "testbed init: modules: %v\n", err)
	} else {
		fmt.Printf("testbed init: loaded %d modules for %d devices\n", len(rep.Loaded), rep.Devices)
	}
	self, err := os.Executable()
	if err != nil {
		self = "/bin/flashline-testbed"
	}
	_ = os.MkdirAll(readyDir, 0o755)
	var ready []string
	for i, args := range cmds {
		r := filepath.Join(readyDir, fmt.Sprintf("%d-%s", i, args[0]))
		ready = append(ready, r)
		args = append(args, "--ready", r)
		c := exec.Command(self, args...)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		// Own session: the emulators outlive this process's exec and must
		// not get the console's signals.
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "testbed init: start %s: %v\n", args[0], err)
			continue
		}
		fmt.Printf("testbed init: started %s (pid %d)\n", strings.Join(args, " "), c.Process.Pid)
		_ = c.Process.Release()
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range ready {
		for {
			if _, err := os.Stat(r); err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				fmt.Fprintf(os.Stderr, "testbed init: %s not ready, going on\n", filepath.Base(r))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return 0
}

func execNext(next string) {
	fmt.Printf("testbed init: exec %s\n", next)
	err := syscall.Exec(next, []string{next}, os.Environ())
	// Only reached on failure; PID 1 must not exit.
	fmt.Fprintf(os.Stderr, "testbed init: exec %s: %v\n", next, err)
	for {
		time.Sleep(time.Hour)
	}
}

// markReady creates the ready file, if one was asked for.
func markReady(path string) {
	if path == "" {
		return
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "testbed: ready file: %v\n", err)
	}
}
