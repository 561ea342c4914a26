// Package qemuboot boots a disk or ISO image in QEMU the way a real machine would boot it
// (BIOS or UEFI firmware, the image attached as a virtio disk, a USB stick or a CD) and
// watches the serial console, for the boot media tests. Like every QEMU user in the project
// it holds an exclusive flock on /tmp/flashline-qemu.lock for the life of the guest.
package qemuboot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// LockPath is the machine-wide QEMU lock.
const LockPath = "/tmp/flashline-qemu.lock"

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
)

// Config is one boot.
type Config struct {
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
}

// OVMF firmware files of Debian's ovmf package.
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Result is what a boot showed.
type Result struct {
	// Console is the serial output up to the end.
	Console string
	// Matched is true when the wanted line appeared; Elapsed is the time from QEMU's start
	// (after the lock was taken) to that line.
	Matched bool
	Elapsed time.Duration
}

// Args returns the QEMU command line for cfg; vars is a writable copy of the OVMF variables.
func Args(cfg Config, vars string) ([]string, error) {
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
		a = append(a, "-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,file="+vars)
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

// Run boots cfg and returns when until has accepted a console line and the guest has then
// stopped by itself (or after a grace second), or when ctx ends.
func Run(ctx context.Context, cfg Config, until func(line string) bool) (*Result, error) {
	unlock, err := lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	dir, err := os.MkdirTemp("", "qemuboot")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	vars := filepath.Join(dir, "vars.fd")
	if cfg.Firmware == UEFI {
		b, err := os.ReadFile(ovmfVars)
		if err != nil {
			return nil, fmt.Errorf("OVMF variables: %w", err)
		}
		if err := os.WriteFile(vars, b, 0o600); err != nil {
			return nil, err
		}
	}
	args, err := Args(cfg, vars)
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
	res := &Result{}
	var mu sync.Mutex
	var console bytes.Buffer
	matched := make(chan struct{})
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			console.WriteString(line + "\n")
			if cfg.Log != nil {
				fmt.Fprintln(cfg.Log, line)
			}
			if !res.Matched && until(line) {
				res.Matched = true
				res.Elapsed = time.Since(start)
				close(matched)
			}
			mu.Unlock()
		}
	}()
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

// lock takes the machine-wide QEMU lock, waiting as long as ctx allows. The wait is a
// blocking flock, like the flock(1) and scripts/qemu waiters it queues with; polling would
// lose most races against them.
func lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(LockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", LockPath, err)
	}
	got := make(chan error, 1)
	go func() { got <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", LockPath, err)
		}
		return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
	case <-ctx.Done():
		// The blocked flock cannot be interrupted; give the lock back as soon as it comes.
		go func() {
			if <-got == nil {
				unix.Flock(int(f.Fd()), unix.LOCK_UN)
			}
			f.Close()
		}()
		return nil, fmt.Errorf("waiting for %s: %w", LockPath, ctx.Err())
	}
}
