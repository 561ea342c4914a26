//go:build e2e

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/testbed/atmodem"
	"github.com/flashline/flashline/testbed/qemu"
	"github.com/u-root/u-root/pkg/cpio"
)

// TestProbesInQEMU boots a guest whose hardware is what the non-radio checks read: a virtio
// disk with a serial, SMBIOS identity, a virtio NIC, the fake AT modem on the host behind
// QEMU's usb-serial (the guest's /dev/ttyUSB0, found by the LTE probe without being told),
// and the power key, pressed through the harness when the console shows the prompt. The
// guest runs flashline-agent inventory and scenario run with testdata/probes.yaml.
//
// scripts/e2e/scenarios runs the example scenarios (radios included) with the virtio
// keyboard's power key and the no-SIM modem; this test adds what those do not reach: the
// ACPI power button's input device, the inventory's JSON, and ethernet.link bringing a down
// NIC up.
func TestProbesInQEMU(t *testing.T) {
	tests := []struct {
		name     string
		modem    atmodem.Config
		press    func(ctx context.Context, vm *qemu.VM) error
		wantLTE  protocol.Status
		wantText string
	}{
		{"healthy modem and ACPI power button", withCSQ(atmodem.EC25(), 18), func(ctx context.Context, vm *qemu.VM) error { return vm.PowerButton(ctx) }, protocol.StatusPass, "CSQ 18 (-77 dBm)"},
	}
	initrd := buildProbeInitrd(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// QEMU's -chardev path cannot hold a comma, and t.TempDir's name comes from the
			// test's: make a plain one.
			dir, err := os.MkdirTemp("", "probes-e2e-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			sock := filepath.Join(dir, "modem.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						_ = atmodem.New(tt.modem).Serve(ctx, c)
					}()
				}
			}()
			defer l.Close()
			disk := filepath.Join(dir, "disk.img")
			if err := os.WriteFile(disk, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(disk, 64<<20); err != nil {
				t.Fatal(err)
			}
			vm := qemu.StartT(t, qemu.Options{
				Mode: qemu.Direct, Initrd: initrd, MemoryMiB: 512, Timeout: 6 * time.Minute,
				Append: "panic=-1",
				SMBIOS: &qemu.SMBIOS{Manufacturer: "GM Industrial", Product: "GM-Box QEMU", Serial: "QEMU-0001"},
				Disks:  []qemu.Drive{{Path: disk, Serial: "FLASHLINE-TARGET"}},
				Net:    qemu.Netdev{Restrict: true},
				Extra: []string{"-chardev", "socket,id=modem,path=" + sock, "-device", "qemu-xhci",
					"-device", "usb-serial,chardev=modem", "-device", "virtio-keyboard-pci"},
			})
			if _, err := vm.Expect(ctx, regexp.MustCompile(`>>> Press POWER <<<`), 4*time.Minute); err != nil {
				t.Fatalf("no prompt: %v", err)
			}
			time.Sleep(500 * time.Millisecond) // the prompt is printed just before the watch starts reading
			if err := tt.press(ctx, vm); err != nil {
				t.Fatal(err)
			}
			line, err := vm.Expect(ctx, regexp.MustCompile(`PROBEINIT results `), 2*time.Minute)
			if err != nil {
				t.Fatalf("no results: %v", err)
			}
			var res struct {
				Status protocol.Status
				Steps  []protocol.StepResult
			}
			if err := json.Unmarshal([]byte(line[strings.Index(line, "{"):]), &res); err != nil {
				t.Fatalf("results %q: %v", line, err)
			}
			byName := map[string]protocol.StepResult{}
			for _, s := range res.Steps {
				byName[s.Name] = s
				t.Logf("%-20s %-5s %s", s.Name, s.Status, s.Message)
			}
			for _, name := range []string{"Target disk", "RAM", "CPU", "Modem on USB serial", "Ethernet link", "Power button"} {
				if byName[name].Status != protocol.StatusPass {
					t.Errorf("%s: %s %s", name, byName[name].Status, byName[name].Message)
				}
			}
			lteRes := byName["LTE modem"]
			if lteRes.Status != tt.wantLTE || !strings.Contains(lteRes.Message, tt.wantText) {
				t.Errorf("LTE modem: %s %q, want %s %q", lteRes.Status, lteRes.Message, tt.wantLTE, tt.wantText)
			}
			if len(lteRes.Measurements) == 0 {
				t.Error("LTE step recorded no measurements")
			}
			inv := strings.Join(vm.Lines(), "\n")
			for _, want := range []string{`"product": "GM-Box QEMU"`, `"serial": "FLASHLINE-TARGET"`, `"transport": "virtio"`, `"vid": "0403"`, `"name": "Power Button"`} {
				if !strings.Contains(inv, want) {
					t.Errorf("inventory lacks %s", want)
				}
			}
			if err := vm.Wait(); err != nil {
				t.Logf("guest exit: %v", err)
			}
		})
	}
}

func withCSQ(c atmodem.Config, csq int) atmodem.Config {
	c.CSQ = csq
	return c
}

// buildProbeInitrd builds the agent and probeinit and packs them with the scenario and the
// kernel modules the guest's hardware needs.
func buildProbeInitrd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root, err := qemu.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for pkg, out := range map[string]string{"./cmds/flashline-agent": "flashline-agent", "./cmds/flashline-agent/testdata/probeinit": "init"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	kernel, err := qemu.DefaultKernel()
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	modDir := filepath.Join(filepath.Dir(filepath.Dir(kernel)), "lib", "modules", release)
	mods := moduleOrder(t, modDir, "xhci_pci", "ftdi_sio", "evdev", "button", "virtio_pci", "virtio_input", "virtio_blk", "virtio_net")

	recs := []cpio.Record{cpio.Directory("dev", 0o755), cpio.CharDev("dev/console", 0o600, 5, 1), cpio.Directory("bin", 0o755), cpio.Directory("mods", 0o755)}
	file := func(dst, src string, perm uint64) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, cpio.StaticFile(dst, string(b), perm))
	}
	file("init", filepath.Join(dir, "init"), 0o755)
	file("bin/flashline-agent", filepath.Join(dir, "flashline-agent"), 0o755)
	file("scenario.yaml", "testdata/probes.yaml", 0o644)
	var order []string
	for _, m := range mods {
		file("mods/"+filepath.Base(m), filepath.Join(modDir, m), 0o644)
		order = append(order, filepath.Base(m))
	}
	recs = append(recs, cpio.StaticFile("mods/order", strings.Join(order, "\n")+"\n", 0o644))
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := cpio.Newc.Writer(zw)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "initrd.gz")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// moduleOrder returns the modules.dep paths of names and their dependencies, dependencies
// first.
func moduleOrder(t *testing.T, modDir string, names ...string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[strings.ReplaceAll(strings.TrimSuffix(filepath.Base(mod), ".ko"), "-", "_")] = mod
	}
	var out []string
	seen := map[string]bool{}
	var add func(string)
	add = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		d := deps[m]
		for i := len(d) - 1; i >= 0; i-- {
			add(d[i])
		}
		out = append(out, m)
	}
	for _, n := range names {
		m, ok := byName[n]
		if !ok {
			t.Fatalf("module %s not in %s", n, modDir)
		}
		add(m)
	}
	return out
}
