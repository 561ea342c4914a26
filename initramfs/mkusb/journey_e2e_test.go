//go:build e2e

package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/scripts/line"
	"github.com/flashline/flashline/testbed/qemu"
)

// usbScenario needs no emulated peripherals: the point here is the boot medium, not the
// radios (the PXE journey tests cover those).
const usbScenario = `name: usb-stick-box
description: A device booted from the discovery stick; only its target disk is checked.
steps:
  - name: Target disk
    disk.present: {transport: virtio, min_size: 128MiB}
`

var (
	passRe = regexp.MustCompile(`flashline: OK +PASS$`)
	failRe = regexp.MustCompile(`flashline: FAIL +FAIL$`)
)

// TestUSBJourney is issue 8's acceptance: a device with no PXE ROM boots the agent from the
// discovery stick (a USB mass-storage device; BIOS and UEFI), finds the reference server by
// DHCP (the stick names no server), runs its job to PASS, flashes the test firmware onto its
// virtio disk and never onto the stick, and then boots that firmware from the disk alone.
// The ISO case boots the hybrid ISO as the stick (UEFI: its unified kernel image).
func TestUSBJourney(t *testing.T) {
	for _, tc := range []struct {
		medium string // usb or iso
		fw     qemu.Firmware
	}{
		{"usb", qemu.BIOS},
		{"usb", qemu.UEFI},
		{"iso", qemu.UEFI},
	} {
		t.Run(tc.medium+"-"+string(tc.fw), func(t *testing.T) { usbJourney(t, tc.medium, tc.fw) })
	}
}

func usbJourney(t *testing.T, medium string, fw qemu.Firmware) {
	if os.Getenv(line.NSEnv) == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root for a network namespace and a tap device")
		}
		args := []string{os.Args[0], "-test.run", "^" + t.Name() + "$", "-test.v", "-test.timeout", "40m"}
		if _, err := line.Enter(context.Background(), false, args, nil); err != nil {
			t.Fatalf("%s inside its namespace: %v", t.Name(), err)
		}
		return
	}
	repo, err := qemu.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := qemu.DefaultKernel()
	if err != nil {
		t.Fatal(err)
	}
	initrd := os.Getenv("FLASHLINE_INITRD")
	if initrd == "" {
		initrd = filepath.Join(repo, "initrd.gz")
	}
	if _, err := os.Stat(initrd); err != nil {
		t.Fatalf("%v: run `make` first", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	work := t.TempDir()
	// The firmware `make firmware` built: nothing is built inside the namespace, which has no
	// route to the module proxy.
	fwDir := filepath.Join(repo, "out", "firmware")
	if _, err := os.Stat(filepath.Join(fwDir, "firmware.img.zst")); err != nil {
		t.Fatalf("%v: run `make firmware` first", err)
	}
	scenario := filepath.Join(work, "usb-stick-box.yaml")
	if err := os.WriteFile(scenario, []byte(usbScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	logf := func(format string, args ...any) { t.Logf(strings.TrimRight(format, "\n"), args...) }
	l, err := line.Start(ctx, line.Config{Repo: repo, Work: work, Kernel: kernel, Initrd: initrd,
		Firmware: fwDir, Image: "firmware.img.zst", Scenario: scenario, Printf: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	// The stick names no server: the agent must find it from the line's DHCP answer.
	o := options{kernel: kernel, initrd: initrd, discover: "dhcp", console: "console=ttyS0,115200", table: "mbr"}
	stick := filepath.Join(work, "flashline-usb.img")
	if medium == "iso" {
		stick = filepath.Join(work, "flashline.iso")
		o.iso = stick
	} else {
		o.usb = stick
	}
	if err := run(ctx, o); err != nil {
		t.Fatal(err)
	}
	stickBefore, err := sha256File(stick)
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(work, "disk.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 256<<20); err != nil {
		t.Fatal(err)
	}
	serial := strings.ToUpper(medium + "-" + string(fw))
	logFile, err := os.Create(filepath.Join(work, "usb-boot.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	net := []string{
		"-netdev", "tap,id=n0,ifname=" + l.Tap() + ",script=no,downscript=no",
		// romfile= : no iPXE ROM, so the stick is the only way in.
		"-device", "virtio-net-pci,netdev=n0,mac=" + qemu.DefaultMAC + ",romfile=",
	}
	var found, verdict string
	res, err := qemu.Boot(ctx, qemu.BootConfig{
		Image: stick, Firmware: fw, Attach: qemu.USB, Serial: serial, Net: net, Memory: 1024,
		Extra: []string{"-drive", "if=none,id=target,format=raw,file=" + disk,
			"-device", "virtio-blk-pci,drive=target,serial=GMDISK-" + serial},
		Log: logFile, Timeout: 20 * time.Minute, Writable: true,
	}, func(s string) bool {
		if strings.Contains(s, "discover: dhcp found the line server") {
			found = s
		}
		if passRe.MatchString(s) || failRe.MatchString(s) {
			verdict = s
			return true
		}
		return false
	})
	if err != nil {
		if res != nil {
			t.Logf("console:\n%s", tail(res.Console, 4000))
		}
		t.Fatal(err)
	}
	t.Logf("%s: discovery: %q; verdict %q after %.1fs", fw, strings.TrimSpace(found), verdict, res.Elapsed.Seconds())
	if found == "" || !strings.Contains(found, l.URL()) {
		t.Errorf("the agent did not find %s by DHCP (console %s)", l.URL(), logFile.Name())
	}
	if !passRe.MatchString(verdict) {
		t.Fatalf("verdict %q, want PASS (console %s)", verdict, logFile.Name())
	}

	// The server stored one passing result.
	b, err := l.Export(ctx, serial)
	if err != nil {
		t.Fatal(err)
	}
	var e line.Export
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	passed := 0
	for _, r := range e.Runs {
		if r.HasResult && r.Status == "pass" {
			passed++
		}
	}
	if passed != 1 {
		t.Fatalf("server stored %d passing results for %s: %s", passed, serial, b)
	}
	// The stick was attached writable: the agent must not have touched it.
	if after, err := sha256File(stick); err != nil || after != stickBefore {
		t.Fatalf("the boot stick changed during the journey (%v)", err)
	}
	// The firmware went to the virtio disk: it must boot from it, alone.
	want := "GM-SOFT-KIT BOOTED serial=" + serial
	res, err = qemu.Boot(ctx, qemu.BootConfig{Image: disk, Firmware: fw, Attach: qemu.Virtio, Serial: serial},
		func(s string) bool { return strings.Contains(s, want) })
	if err != nil {
		if res != nil {
			t.Logf("console:\n%s", tail(res.Console, 3000))
		}
		t.Fatalf("flashed disk: %v", err)
	}
	t.Logf("%s: flashed disk boots the firmware: %q after %.1fs", fw, want, res.Elapsed.Seconds())
}

func sha256File(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", sha256.Sum256(b)), nil
}
