package line

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/flashline/flashline/testbed/qemu"
)

// Fault is what goes wrong on purpose during a journey.
type Fault int

// Faults the journey tests inject.
const (
	NoFault       Fault = iota
	FailingStep         // the scenario has a step the device cannot pass
	NetworkDrop         // the image download is cut mid-stream (Config.CutImageAfter) and the link flaps
	CorruptImage        // the served image no longer matches the signed hash
	ServerRestart       // the server is killed (SIGKILL) and restarted while the device reports
)

func (f Fault) String() string {
	return [...]string{"none", "failing step", "network drop during download", "corrupted image", "server restart while reporting"}[f]
}

// Outcome is what a journey did, as the line and the server saw it.
type Outcome struct {
	Phases   []Phase
	Passed   bool   // the agent showed PASS
	Booted   bool   // the flashed firmware printed its marker
	Export   Export // the server's record of the device
	Consoles []string
}

// Export is the part of `flashline-server export` the tests check.
type Export struct {
	Serial string `json:"serial"`
	Runs   []struct {
		RunID  string `json:"run_id"`
		Line   string `json:"line"`
		Status string `json:"status"`
		// Where the server placed the device (the line view).
		Station       string `json:"station"`
		StationSource string `json:"station_source"`
		StationPort   string `json:"station_port"`
		FailedStep    string `json:"failed_step"`
		Reason        string `json:"reason"`
		HasResult     bool   `json:"has_result"`
		Flash         *struct {
			Bytes   int64 `json:"bytes"`
			Resumes int   `json:"resumes"`
		} `json:"flash"`
		Steps []struct {
			Name         string `json:"name"`
			Status       string `json:"status"`
			Measurements []struct {
				Name string `json:"name"`
			} `json:"measurements"`
		} `json:"steps"`
		Timings []struct {
			Phase      string `json:"phase"`
			DurationMS int64  `json:"duration_ms"`
		} `json:"timings"`
	} `json:"runs"`
}

var (
	passRe    = regexp.MustCompile(`flashline: OK +PASS$`)
	failRe    = regexp.MustCompile(`flashline: FAIL +FAIL$`)
	flash10   = regexp.MustCompile(`flash: +[1-9]0% `)
	flashOK   = regexp.MustCompile(`flash: .* written and verified`)
	localBoot = regexp.MustCompile(`Booting from local disk`)
)

// RunJourney powers the device on, lets it run its job with the fault injected, power-cycles
// it, and checks what it boots next: its new firmware after a pass, the provisioning agent
// again after a failure.
func RunJourney(ctx context.Context, l *Line, d *Device, fault Fault, printf func(string, ...any)) (*Outcome, error) {
	if printf == nil {
		printf = func(string, ...any) {}
	}
	out := &Outcome{}
	printf("waiting for the machine's QEMU lock (one guest at a time)\n")
	release, err := holdMachine(ctx, d)
	if err != nil {
		return out, err
	}
	defer release()
	if fault == CorruptImage {
		if err := l.CorruptImage(); err != nil {
			return out, err
		}
	}
	printf("power on %s (%d MiB RAM, PXE on %s)\n", d.Serial, d.Memory, l.Tap())
	vm, err := d.PowerOn(ctx, l, "boot1-"+d.Serial, 20*time.Minute)
	if err != nil {
		return out, err
	}
	defer vm.Kill()

	// Faults that strike during the run, each once, from the console's cues.
	faultErr := make(chan error, 1)
	go func() {
		switch fault {
		case NetworkDrop:
			if _, err := vm.Expect(ctx, flash10, 15*time.Minute); err != nil {
				faultErr <- nil
				return
			}
			// The download itself was cut by the proxy (Config.CutImageAfter); on top of
			// that the link goes down for a moment while the device writes.
			printf("fault: the image download was cut mid-stream; now the link flaps for 3s\n")
			faultErr <- l.DropNetwork(ctx, 3*time.Second)
		case ServerRestart:
			// Mid-flash: the device is streaming the image and reporting progress; the
			// download must resume and the result still be stored exactly once.
			if _, err := vm.Expect(ctx, flash10, 15*time.Minute); err != nil {
				faultErr <- nil
				return
			}
			printf("fault: killing the server (SIGKILL) while the device streams and reports, and restarting it\n")
			faultErr <- l.KillServer(ctx)
		default:
			faultErr <- nil
		}
	}()

	phases, err := Watch(ctx, vm, FirstBoot(), nil, printf)
	out.Phases = phases
	if err != nil {
		out.Consoles = append(out.Consoles, vm.LogPath())
		return out, err
	}
	verdict := regexp.MustCompile(passRe.String() + "|" + failRe.String())
	line, err := vm.Expect(ctx, verdict, 15*time.Minute)
	out.Consoles = append(out.Consoles, vm.LogPath())
	if err != nil {
		return out, fmt.Errorf("waiting for PASS/FAIL: %w (console %s)", err, vm.LogPath())
	}
	out.Passed = passRe.MatchString(line)
	out.Phases = append(out.Phases, Phase{Name: "verdict " + map[bool]string{true: "PASS", false: "FAIL"}[out.Passed], At: vm.Elapsed()})
	printf("  %-28s at %6.1fs\n", out.Phases[len(out.Phases)-1].Name, vm.Elapsed().Seconds())
	if err := <-faultErr; err != nil {
		return out, fmt.Errorf("fault %s: %w", fault, err)
	}

	if out.Passed {
		// The agent syncs and reboots; with -no-reboot QEMU ends: the power cycle.
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := waitVM(wctx, vm)
		cancel()
		if err != nil {
			return out, fmt.Errorf("the device did not reboot after PASS: %w", err)
		}
	} else {
		vm.Kill()
	}
	_ = vm.Wait()
	if out.Export, err = l.exportOf(ctx, d.Serial); err != nil {
		return out, err
	}

	printf("power on again: %s\n", map[bool]string{true: "expecting LOCALBOOT into the new firmware", false: "expecting the provisioning agent again (never flashed)"}[out.Passed])
	vm2, err := d.PowerOn(ctx, l, "boot2-"+d.Serial, 10*time.Minute)
	if err != nil {
		return out, err
	}
	defer vm2.Kill()
	start := time.Now()
	out.Consoles = append(out.Consoles, vm2.LogPath())
	if out.Passed {
		// pxelinux got LOCALBOOT from the server and handed over to the disk, whose own boot
		// loader starts the flashed firmware.
		if _, err := vm2.Expect(ctx, localBoot, 5*time.Minute); err != nil {
			return out, fmt.Errorf("second boot: no LOCALBOOT from the server: %w (console %s)", err, vm2.LogPath())
		}
		m, err := vm2.ExpectSubmatch(ctx, Marker, 5*time.Minute)
		if err != nil {
			return out, fmt.Errorf("second boot: no firmware marker: %w (console %s)", err, vm2.LogPath())
		}
		if m[1] != d.Serial {
			return out, fmt.Errorf("second boot: the firmware reports serial %q, want %q", m[1], d.Serial)
		}
		out.Booted = true
		printf("  %-28s after %6.1fs\n", "new firmware booted", time.Since(start).Seconds())
		return out, nil
	}
	if _, err := vm2.Expect(ctx, regexp.MustCompile(`flashline-agent \S+ starting`), 5*time.Minute); err != nil {
		return out, fmt.Errorf("second boot: the failed device did not netboot the agent again: %w (console %s)", err, vm2.LogPath())
	}
	printf("  %-28s after %6.1fs\n", "agent netbooted again", time.Since(start).Seconds())
	return out, nil
}

func waitVM(ctx context.Context, vm *qemu.VM) error {
	done := make(chan error, 1)
	go func() { done <- vm.Wait() }()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return nil
	}
}

func (l *Line) exportOf(ctx context.Context, serial string) (Export, error) {
	var e Export
	b, err := l.Export(ctx, serial)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("export: %w", err)
	}
	return e, nil
}

// FirstMiBZero reports whether a disk image's first MiB is all zeros (nothing bootable there).
func FirstMiBZero(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b := make([]byte, 1<<20)
	if _, err := f.ReadAt(b, 0); err != nil {
		return false, err
	}
	return bytes.Count(b, []byte{0}) == len(b), nil
}
