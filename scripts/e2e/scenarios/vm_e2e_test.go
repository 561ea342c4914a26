//go:build e2e

package scenarios

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/testbed/atmodem"
	"github.com/flashline/flashline/testbed/qemu"
)

// device is one emulated GM-Box booted straight into the agent's initrd.
type device struct {
	Initrd string
	Append string
	// Modem configures the fake AT modem behind the guest's usb-serial port.
	Modem atmodem.Config
	// PressOn, when set, presses the power key once a console line matches.
	PressOn *regexp.Regexp
	// PressACPI presses the machine's ACPI power button (system_powerdown) instead of the
	// virtio keyboard's power key.
	PressACPI bool
	Timeout   time.Duration
}

// boot starts the device with the foundation's harness (testbed/qemu) and
// its peripherals: a virtio disk, a virtio keyboard, and the fake modem on
// a usb-serial port (the guest's /dev/ttyUSB0).
func boot(t *testing.T, d device) *qemu.VM {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(128 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sock := filepath.Join(dir, "modem.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(context.Background())
	t.Cleanup(func() { stop(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				context.AfterFunc(mctx, func() { c.Close() })
				_ = atmodem.New(d.Modem).Serve(mctx, c)
			}()
		}
	}()

	var vm *qemu.VM
	var once sync.Once
	ready := make(chan struct{})
	onLine := func(line string) {
		if d.PressOn == nil || !d.PressOn.MatchString(line) {
			return
		}
		once.Do(func() {
			go func() {
				<-ready
				// The check opens the key device before it prompts.
				time.Sleep(time.Second)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				press := func() error { return vm.SendKey(ctx, "power") }
				if d.PressACPI {
					press = func() error { return vm.PowerButton(ctx) }
				}
				if err := press(); err != nil {
					t.Errorf("press power: %v", err)
				}
			}()
		})
	}
	vm = qemu.StartT(t, qemu.Options{
		Mode:      qemu.Direct,
		Initrd:    d.Initrd,
		Append:    "loglevel=1 panic=-1 " + d.Append,
		MemoryMiB: 512,
		NoNIC:     true,
		Disks:     []qemu.Drive{{Path: disk, Serial: "E2EDISK"}},
		SMBIOS:    &qemu.SMBIOS{Manufacturer: "Flashline", Product: "GM-Box QEMU", Serial: "E2E-SCENARIO"},
		Extra: []string{
			"-device", "virtio-keyboard-pci",
			"-device", "qemu-xhci,id=usbc",
			"-chardev", "socket,id=modem,path=" + sock,
			"-device", "usb-serial,chardev=modem,bus=usbc.0",
		},
		Timeout: d.Timeout,
		OnLine:  onLine,
	})
	close(ready)
	return vm
}

// summaryRe matches the operator console's final verdict lines.
var summaryRe = regexp.MustCompile(`: all \d+ steps passed|REASON: .*`)

// summary reads the operator console's final summary: "NAME: all N steps
// passed", or "FAILED STEP: ..." and "REASON: ..." lines. (The --json output
// can be interleaved with init's own messages on the serial console, so the
// summary is what the test relies on.)
func summary(lines []string) (res scenarioResult, ok bool) {
	for _, l := range lines {
		l = strings.TrimSpace(ansi.ReplaceAllString(l, ""))
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

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

type scenarioResult struct {
	Status     string
	FailedStep string
	Reason     string
}
