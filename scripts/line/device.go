package line

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/flashline/flashline/testbed/atmodem"
	"github.com/flashline/flashline/testbed/qemu"
)

// Device is the emulated GM-Box: its disk outlives power cycles, like a real one's.
type Device struct {
	Serial  string
	Product string
	MAC     string
	Memory  int    // MiB
	Disk    string // raw disk image
	LogDir  string
	// Modem configures the fake LTE modem behind the guest's usb-serial port.
	Modem atmodem.Config
	// PressButton makes the line press the power button when the agent prompts for it (the
	// operator's part); false leaves the prompt unanswered.
	PressButton bool
	// OperatorDelay is how long the operator takes to press the button once prompted (1s
	// when zero: just the time the check needs to open the key device).
	OperatorDelay time.Duration
	// OnLine sees every console line.
	OnLine func(line string)
	// LockPath is the QEMU lock each boot takes; empty: the machine-wide one.
	LockPath string
	// Hold, when set, is the QEMU lock hold the device's boots run under with other guests
	// (qemu.HoldLock); LockPath is then not taken.
	Hold *qemu.Hold
	// Tap is the line tap the NIC uses; empty: the line's first (Line.Tap).
	Tap string
	// Button, when set, holds the operator back: the power button is pressed once it is
	// closed (and OperatorDelay has passed), so a test can release several devices in order.
	Button <-chan struct{}
}

// NewDevice makes a device with a blank disk of diskSize bytes in dir.
func NewDevice(dir, serial string, diskSize int64) (*Device, error) {
	d := &Device{Serial: serial, Product: "GM-Box QEMU", MAC: qemu.DefaultMAC, Memory: 512,
		Disk: filepath.Join(dir, "disk-"+serial+".raw"), LogDir: dir, Modem: atmodem.EC25(), PressButton: true}
	f, err := os.Create(d.Disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return d, f.Truncate(diskSize)
}

// PowerOn boots the device by PXE on the line's tap, with its peripherals attached. The VM
// ends when the guest reboots or powers off (the next PowerOn is the next boot).
func (d *Device) PowerOn(ctx context.Context, l *Line, name string, timeout time.Duration) (*qemu.VM, error) {
	sock := filepath.Join(d.LogDir, name+"-modem.sock")
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("fake modem: %w", err)
	}
	mctx, stopModem := context.WithCancel(context.Background())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				stop := context.AfterFunc(mctx, func() { c.Close() })
				defer stop()
				_ = atmodem.New(d.Modem).Serve(mctx, c)
			}()
		}
	}()

	var vm *qemu.VM
	var once sync.Once
	vmReady := make(chan struct{})
	prompt := regexp.MustCompile(`>>> Press POWER`)
	onLine := func(line string) {
		if d.OnLine != nil {
			d.OnLine(line)
		}
		if d.PressButton && prompt.MatchString(line) {
			once.Do(func() {
				go func() {
					<-vmReady
					// The check opens the key device before it prompts; give it a moment.
					time.Sleep(max(d.OperatorDelay, time.Second))
					if d.Button != nil {
						select {
						case <-d.Button:
						case <-ctx.Done():
							return
						}
					}
					pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
					_ = vm.SendKey(pctx, "power")
				}()
			})
		}
	}
	vm, err = qemu.Start(ctx, qemu.Options{
		Name:      name,
		Mode:      qemu.PXEBIOS,
		MemoryMiB: d.Memory,
		MAC:       d.MAC,
		Net:       qemu.Netdev{Args: "tap,ifname=" + cmp.Or(d.Tap, l.Tap()) + ",script=no,downscript=no"},
		Disks:     []qemu.Drive{{Path: d.Disk, Serial: "GMDISK-" + d.Serial}},
		SMBIOS:    &qemu.SMBIOS{Manufacturer: "Flashline", Product: d.Product, Serial: d.Serial},
		Extra: []string{
			"-device", "virtio-keyboard-pci",
			"-device", "qemu-xhci,id=usbc",
			"-chardev", "socket,id=modem,path=" + sock,
			"-device", "usb-serial,chardev=modem,bus=usbc.0",
		},
		Timeout:  timeout,
		LogDir:   d.LogDir,
		OnLine:   onLine,
		LockPath: d.LockPath,
		Hold:     d.Hold,
	})
	close(vmReady)
	if err != nil {
		stopModem()
		ln.Close()
		return nil, err
	}
	go func() {
		_ = vm.Wait()
		stopModem()
		ln.Close()
	}()
	return vm, nil
}

// Phase is one timed phase of a journey as the line saw it.
type Phase struct {
	Name string
	At   time.Duration // since power-on
}

// Watch waits for the given console patterns in order and records when each appeared. It
// stops at the first pattern that does not appear within timeout, or when fail matches.
func Watch(ctx context.Context, vm *qemu.VM, steps []WatchStep, fail *regexp.Regexp, printf func(string, ...any)) ([]Phase, error) {
	var phases []Phase
	from := 0
	for _, s := range steps {
		re := s.Re
		if fail != nil {
			re = regexp.MustCompile(s.Re.String() + "|" + fail.String())
		}
		line, next, err := vm.ExpectFrom(ctx, from, re, s.Timeout)
		if err != nil {
			if errors.Is(err, qemu.ErrExited) {
				return phases, fmt.Errorf("waiting for %s: the device stopped (console %s)", s.Name, vm.LogPath())
			}
			return phases, fmt.Errorf("waiting for %s: %w (console %s)", s.Name, err, vm.LogPath())
		}
		from = next
		if fail != nil && fail.MatchString(line) && !s.Re.MatchString(line) {
			return phases, fmt.Errorf("%s: device failed: %s", s.Name, strings.TrimSpace(line))
		}
		p := Phase{Name: s.Name, At: vm.Elapsed()}
		phases = append(phases, p)
		if printf != nil {
			printf("  %-28s at %6.1fs\n", s.Name, p.At.Seconds())
		}
	}
	return phases, nil
}

// WatchStep is one console milestone.
type WatchStep struct {
	Name    string
	Re      *regexp.Regexp
	Timeout time.Duration
}

// FirstBoot are the milestones of the provisioning boot, in order.
func FirstBoot() []WatchStep {
	m := func(name, re string, t time.Duration) WatchStep {
		return WatchStep{name, regexp.MustCompile(re), t}
	}
	return []WatchStep{
		m("PXE: DHCP and TFTP", `(?i)pxelinux|SYSLINUX`, 2*time.Minute),
		m("kernel started", `Linux version`, 2*time.Minute),
		m("agent started", `flashline-agent \S+ starting`, 3*time.Minute),
		m("modules loaded", `modules: \d+ loaded`, 3*time.Minute),
		m("network up (DHCP)", `flashline-agent \S+ up on`, 3*time.Minute),
		m("job received", `flashline: OK +job `, 3*time.Minute),
		m("scenario finished", `flashline: \S+ +flash: |FAIL`, 8*time.Minute),
	}
}
