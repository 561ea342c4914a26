package qemu

// Boot is the harness' other way to run a guest: a machine that boots what it is given the way
// a real one would (BIOS or UEFI firmware, optionally Secure Boot; a virtio disk, a USB stick,
// a CD, or the network), watched until a console line, for the boot media, firmware, UKI and
// netboot tests. Like Start it holds the machine-wide lock (Lock) for the guest's life.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Firmware is what the virtual machine boots with.
type Firmware string

// Attach is how the image is connected.
type Attach string

const (
	BIOS Firmware = "bios" // SeaBIOS, QEMU's default
	UEFI Firmware = "uefi" // OVMF

	Virtio Attach = "virtio" // a fixed disk
	USB    Attach = "usb"    // a removable USB mass-storage device on an xHCI controller
	CDROM  Attach = "cdrom"  // an ATAPI CD-ROM
	PXE    Attach = "pxe"    // no image: the firmware boots from the network (Net)
)

// BootConfig is one boot.
type BootConfig struct {
	Image    string
	Firmware Firmware
	Attach   Attach
	// Serial is the DMI system serial number (-smbios type=1,serial=...).
	Serial string
	// Net adds QEMU arguments for networking; nil means no NIC at all (no PXE ROM either).
	Net []string
	// Extra QEMU arguments.
	Extra []string
	// Memory in MiB; default 1024.
	Memory int
	// Log, when set, receives the serial console as it arrives.
	Log io.Writer
	// Writable attaches the image without QEMU's snapshot, so that guest writes reach it.
	Writable bool
	// Timeout bounds the boot from QEMU's start, after the lock was taken (waiting for
	// other engineers' guests is bounded only by ctx); zero means 5 minutes.
	Timeout time.Duration
	// SecureBoot (UEFI only) runs OVMF's Secure Boot build on a q35 machine with SMM.
	SecureBoot bool
	// OVMFCode overrides the UEFI firmware image; OVMFVars is the variable store the guest
	// starts with (nil: Debian's empty one), e.g. with the test's own keys enrolled. The
	// guest writes a copy.
	OVMFCode string
	OVMFVars []byte
	// Poll, when set, also calls until with an empty line this often, for an end that is
	// not a console line (something the server logged, time since it did).
	Poll time.Duration
	// LockPath overrides the machine-wide LockPath.
	LockPath string
}

// OVMF firmware files of Debian's ovmf package.
const (
	ovmfCode       = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfSecureCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfVars       = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// BootResult is what a boot showed.
type BootResult struct {
	// Console is the serial output up to the end.
	Console string
	// Matched is true when the wanted line appeared; Elapsed is the time from QEMU's start
	// (after the lock was taken) to that line.
	Matched bool
	Elapsed time.Duration
}

// BootArgs returns the QEMU command line for cfg; vars is a writable copy of the OVMF
// variables.
func BootArgs(cfg BootConfig, vars string) ([]string, error) {
	mem := cfg.Memory
	if mem == 0 {
		mem = 1024
	}
	a := []string{"-accel", "tcg", "-cpu", "max", "-m", fmt.Sprint(mem), "-smp", "1",
		"-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"}
	if cfg.Serial != "" {
		a = append(a, "-smbios", "type=1,serial="+cfg.Serial)
	}
	switch cfg.Firmware {
	case BIOS, "":
	case UEFI:
		code := cfg.OVMFCode
		switch {
		case code != "":
		case cfg.SecureBoot:
			code = ovmfSecureCode
		default:
			code = ovmfCode
		}
		if cfg.SecureBoot {
			a = append(a, "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		a = append(a, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	default:
		return nil, fmt.Errorf("unknown firmware %q", cfg.Firmware)
	}
	snap := ",snapshot=on"
	if cfg.Writable {
		snap = ""
	}
	switch cfg.Attach {
	case Virtio, "":
		a = append(a, "-drive", "if=none,id=boot,file="+cfg.Image+",format=raw"+snap,
			"-device", "virtio-blk-pci,drive=boot,bootindex=0")
	case USB:
		a = append(a, "-device", "qemu-xhci,id=xhci",
			"-drive", "if=none,id=stick,format=raw"+snap+",file="+cfg.Image,
			"-device", "usb-storage,bus=xhci.0,drive=stick,removable=on,bootindex=0")
	case CDROM:
		a = append(a, "-drive", "if=none,id=cd,file="+cfg.Image+",media=cdrom,readonly=on,format=raw",
			"-device", "ide-cd,drive=cd,bootindex=0")
	case PXE:
		if cfg.Net == nil {
			return nil, errors.New("a network boot needs Net")
		}
		a = append(a, "-boot", "n")
	default:
		return nil, fmt.Errorf("unknown attachment %q", cfg.Attach)
	}
	if cfg.Net == nil {
		a = append(a, "-net", "none")
	} else {
		a = append(a, cfg.Net...)
	}
	return append(a, cfg.Extra...), nil
}

// Boot boots cfg and returns when until has accepted a console line and the guest has then
// stopped by itself (or after a grace second), or when ctx ends.
func Boot(ctx context.Context, cfg BootConfig, until func(line string) bool) (*BootResult, error) {
	lockPath := cmp.Or(cfg.LockPath, LockPath)
	unlock, err := Lock(ctx, lockPath, "boot "+cmp.Or(cfg.Image, string(cfg.Attach)), nil)
	if err != nil {
		return nil, err
	}
	defer unlock()

	dir, err := os.MkdirTemp("", "flashline-boot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	vars := filepath.Join(dir, "vars.fd")
	if cfg.Firmware == UEFI {
		b := cfg.OVMFVars
		if b == nil {
			if b, err = os.ReadFile(ovmfVars); err != nil {
				return nil, fmt.Errorf("OVMF variables: %w", err)
			}
		}
		if err := os.WriteFile(vars, b, 0o600); err != nil {
			return nil, err
		}
	}
	args, err := BootArgs(cfg, vars)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancelBoot := context.WithTimeout(ctx, timeout)
	defer cancelBoot()
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(qctx, "qemu-system-x86_64", args...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	res := &BootResult{}
	var mu sync.Mutex
	var console bytes.Buffer
	matched := make(chan struct{})
	scanDone := make(chan struct{})
	check := func(line string) {
		if !res.Matched && until(line) {
			res.Matched = true
			res.Elapsed = time.Since(start)
			close(matched)
		}
	}
	go func() {
		defer close(scanDone)
		// Firmware consoles end lines with a bare CR and paint with escape sequences.
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sc.Split(scanLinesOrCR)
		for sc.Scan() {
			line := consoleLine(sc.Text())
			if strings.TrimSpace(line) == "" {
				continue
			}
			mu.Lock()
			console.WriteString(line + "\n")
			if cfg.Log != nil {
				fmt.Fprintln(cfg.Log, line)
			}
			check(line)
			mu.Unlock()
		}
	}()
	if cfg.Poll > 0 {
		go func() {
			t := time.NewTicker(cfg.Poll)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					mu.Lock()
					check("")
					mu.Unlock()
				case <-scanDone:
					return
				}
			}
		}()
	}
	waitErr := make(chan error, 1)
	go func() {
		<-scanDone
		waitErr <- cmd.Wait()
	}()
	select {
	case <-matched:
		// Let the guest finish by itself (gm-soft-kit powers off), then stop it.
		select {
		case <-waitErr:
		case <-time.After(3 * time.Second):
			cancel()
			<-waitErr
		}
	case err = <-waitErr:
		if err == nil {
			err = errors.New("guest stopped before the expected console line")
		}
		err = fmt.Errorf("qemu: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	case <-ctx.Done():
		cancel()
		<-waitErr
		err = fmt.Errorf("no expected console line before %w", ctx.Err())
	}
	mu.Lock()
	res.Console = console.String()
	mu.Unlock()
	if res.Matched {
		return res, nil
	}
	return res, err
}

// scanLinesOrCR is bufio.ScanLines with a bare carriage return ending a line too.
func scanLinesOrCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// consoleLine is a firmware console line as text: no escape sequences, no control bytes.
func consoleLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, stripANSI(s))
}
