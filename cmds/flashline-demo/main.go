// Command flashline-demo runs the whole journey once on this machine: the reference server on
// a private network namespace, a QEMU GM-Box with emulated Wi-Fi, Bluetooth, LTE modem and
// power button that netboots from it, is tested, flashed, power-cycled and boots its new
// firmware. `make demo` builds what it needs and runs it; it needs root (network namespaces).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/flashline/flashline/scripts/line"
	"github.com/flashline/flashline/testbed/netlab"
	"github.com/flashline/flashline/testbed/qemu"
)

func main() {
	work := flag.String("work", "out/demo", "working directory (server data, disk image, console logs)")
	initrd := flag.String("initrd", "out/initrd-testbed.gz", "the agent's initrd with the testbed emulators")
	firmware := flag.String("firmware", "out/firmware", "test firmware directory (mkfirmware)")
	image := flag.String("image", "firmware.img.zst", "published firmware file to flash")
	scen := flag.String("scenario", "scenarios/gm-box-qemu.yaml", "the device's scenario")
	key := flag.String("key", "", "operator private key signing the jobs (the initrd must hold its public key)")
	memory := flag.Int("memory", 512, "device RAM in MiB")
	serial := flag.String("serial", "GMBOX-DEMO-0001", "the device's DMI serial")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	inside, err := line.Enter(ctx, true, os.Args, func(l *netlab.Lab) {
		fmt.Printf("line network: namespace %s, server %s on %s\n", l.NS, l.ServerIP(), l.Tap)
		fmt.Printf("dashboard:    http://%s:8080/  (open it in a browser on this machine while the demo runs)\n", l.NSSide.Addr())
	})
	if !inside {
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: FAILED after %s: %v\n", time.Since(start).Round(time.Second), err)
			os.Exit(1)
		}
		fmt.Printf("demo: done in %s; everything it started is cleaned up\n", time.Since(start).Round(time.Second))
		return
	}
	if err := run(ctx, *work, *initrd, *firmware, *image, *scen, *key, *serial, *memory); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, work, initrd, firmware, image, scen, key, serial string, memory int) error {
	repo, err := qemu.RepoRoot()
	if err != nil {
		return err
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(repo, p)
	}
	kernel, err := qemu.DefaultKernel()
	if err != nil {
		return err
	}
	work = abs(work)
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	printf := func(format string, args ...any) { fmt.Printf(format, args...) }
	l, err := line.Start(ctx, line.Config{
		Repo: repo, Work: work, Kernel: kernel, Initrd: abs(initrd), Firmware: abs(firmware),
		Image: image, Scenario: abs(scen), KeyFile: key, Printf: printf,
	})
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Printf("server up in %.1fs (log %s)\n", time.Since(t0).Seconds(), l.ServerLog())
	d, err := line.NewDevice(work, serial, 256<<20)
	if err != nil {
		return err
	}
	d.Memory = memory
	out, err := line.RunJourney(ctx, l, d, line.NoFault, printf)
	for _, c := range out.Consoles {
		fmt.Printf("console log: %s\n", c)
	}
	if err != nil {
		return err
	}
	if !out.Passed || !out.Booted {
		return fmt.Errorf("the device did not pass and boot its firmware (passed=%v booted=%v)", out.Passed, out.Booted)
	}
	fmt.Println("\nthe line server's record of the run (flashline-server export):")
	for _, r := range out.Export.Runs {
		fmt.Printf("  run %s: %s, %d steps\n", r.RunID, r.Status, len(r.Steps))
		// Boot phases arrive twice (with the hello and with the result): show each once.
		seen := map[string]bool{}
		for _, t := range r.Timings {
			if seen[t.Phase] {
				continue
			}
			seen[t.Phase] = true
			fmt.Printf("    %-40s %7.1fs\n", t.Phase, float64(t.DurationMS)/1000)
		}
	}
	fmt.Printf("\nPASS: %s was tested, flashed and booted its new firmware in %s\n", serial, time.Since(t0).Round(time.Second))
	return nil
}
