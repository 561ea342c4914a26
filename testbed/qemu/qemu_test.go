package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQEMU writes a shell script standing in for qemu-system-x86_64: it prints the console
// lines of script (a shell snippet) and exits.
func fakeQEMU(t *testing.T, script string) (Options, string) {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "qemu")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinuz", "initrd.gz"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Options{
		Mode: Direct, QEMU: exe, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz"),
		LogDir: filepath.Join(dir, "logs"), LockPath: filepath.Join(dir, "lock"), Timeout: 20 * time.Second,
	}, dir
}

func TestExpectAndLog(t *testing.T) {
	opts, _ := fakeQEMU(t, `echo "SeaBIOS"; printf 'iPXE 1.0\r\nprogress 10%%\rprogress 100%%\n'; sleep 0.3; echo "[06:12:01.234 +1.0s] flashline: OK   flashline-agent v1 up on eth0 52:54:00:12:34:56, 10.0.2.15"; echo "again up on eth1 x, y"`)
	var mu sync.Mutex
	var seen []string
	opts.OnLine = func(l string) { mu.Lock(); seen = append(seen, l); mu.Unlock() }
	vm, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := vm.ExpectSubmatch(ctx, regexp.MustCompile(`up on (\S+) (\S+), (\S+)`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m[1] != "eth0" || m[3] != "10.0.2.15" {
		t.Errorf("submatches %q", m)
	}
	// The next Expect continues after the previous match.
	line, err := vm.Expect(ctx, regexp.MustCompile(`up on`), 10*time.Second)
	if err != nil || !strings.HasPrefix(line, "again") {
		t.Errorf("second Expect = %q, %v", line, err)
	}
	if err := vm.Wait(); err != nil {
		t.Errorf("Wait = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"SeaBIOS", "iPXE 1.0", "progress 10%", "progress 100%"} {
		if !slices.Contains(seen, want) {
			t.Errorf("line %q not seen; got %q", want, seen)
		}
	}
	if got := vm.Lines(); len(got) != len(seen) {
		t.Errorf("Lines() has %d lines, callback saw %d", len(got), len(seen))
	}
	log, err := os.ReadFile(vm.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# " + opts.QEMU + " -accel tcg -cpu max", "] SeaBIOS\n", "# qemu exited after"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestType(t *testing.T) {
	opts, _ := fakeQEMU(t, `echo "rescue>"; read line; echo "got: $line"`)
	vm, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	ctx := context.Background()
	if _, err := vm.Expect(ctx, regexp.MustCompile(`rescue>`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := vm.Type("lsmod\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Expect(ctx, regexp.MustCompile(`^got: lsmod$`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	vm.Wait()
	if err := vm.Type("late\n"); !errors.Is(err, ErrExited) {
		t.Errorf("Type after exit = %v", err)
	}
}

func TestExpectFailures(t *testing.T) {
	opts, _ := fakeQEMU(t, `echo booting; echo "Kernel panic - not syncing"; exit 3`)
	vm, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = vm.Expect(context.Background(), regexp.MustCompile(`never`), 10*time.Second)
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "| Kernel panic") || !strings.Contains(err.Error(), vm.LogPath()) {
		t.Errorf("err = %v; want ErrExited with the console tail and the log path", err)
	}
	if err := vm.Wait(); err == nil {
		t.Error("Wait after exit 3 = nil")
	}

	opts, _ = fakeQEMU(t, `echo waiting; sleep 5`)
	vm, err = Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	start := time.Now()
	_, err = vm.Expect(context.Background(), regexp.MustCompile(`never`), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "within 300ms") || time.Since(start) > 3*time.Second {
		t.Errorf("err = %v after %v", err, time.Since(start))
	}
}

func TestTimeoutKillsGuest(t *testing.T) {
	opts, _ := fakeQEMU(t, `echo started; exec sleep 30`)
	opts.Timeout = 500 * time.Millisecond
	vm, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = vm.Wait()
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("Wait = %v, want a timeout error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("guest lived %v after a 500ms timeout", d)
	}
}

func TestLockSerialisesGuests(t *testing.T) {
	opts, dir := fakeQEMU(t, `echo start >> "$MARK"; sleep 0.5; echo end >> "$MARK"`)
	mark := filepath.Join(dir, "mark")
	t.Setenv("MARK", mark)
	var waited []string
	var mu sync.Mutex
	opts.LockWait = func(h string) { mu.Lock(); waited = append(waited, h); mu.Unlock() }
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vm, err := Start(context.Background(), opts)
			if err != nil {
				t.Error(err)
				return
			}
			vm.Wait()
		}()
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	b, _ := os.ReadFile(mark)
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "start end start end" {
		t.Errorf("guests overlapped: %q", got)
	}
	if len(waited) != 1 || !strings.Contains(waited[0], "pid ") {
		t.Errorf("LockWait calls %q", waited)
	}
	// A cancelled wait gives up.
	holder, err := acquireLock(context.Background(), opts.LockPath, "holder", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseLock(holder)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Start(ctx, opts); err == nil || !strings.Contains(err.Error(), "waiting for the QEMU lock") {
		t.Errorf("Start with the lock held = %v", err)
	}
}

func TestArgs(t *testing.T) {
	base, dir := fakeQEMU(t, "")
	tests := []struct {
		name    string
		opts    func(o *Options)
		want    []string
		notWant []string
		files   []string
	}{
		{
			name: "pxe bios",
			opts: func(o *Options) { o.Mode = PXEBIOS; o.Append = "flashline.server=http://10.0.2.2:8080" },
			want: []string{"-accel tcg -cpu max", "-boot n", "-netdev user,tftp=", ",bootfile=pxelinux.0,id=n0",
				"-device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,bootindex=1", "-monitor unix:"},
			files: []string{"pxelinux.0", "ldlinux.c32", "vmlinuz", "initrd.gz", "pxelinux.cfg/default"},
		},
		{
			name:  "pxe uefi",
			opts:  func(o *Options) { o.Mode = PXEUEFI; o.NIC = "e1000" },
			want:  []string{"if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/", "bootfile=syslinux.efi", "-device e1000,netdev=n0"},
			files: []string{"syslinux.efi", "ldlinux.e64"},
		},
		{
			name: "direct with disks, smbios and restricted net",
			opts: func(o *Options) {
				o.Append = "quiet"
				o.Net = Netdev{Restrict: true, GuestFwd: []string{"tcp:10.0.2.100:80-tcp:127.0.0.1:8080"}}
				o.Disks = []Drive{{Path: "/tmp/a,b.img", Serial: "S1"}, {Path: "/tmp/n.img", Interface: "nvme"}}
				o.SMBIOS = &SMBIOS{Manufacturer: "GM, Inc", Serial: "GM-0001"}
				o.Extra = []string{"-device", "virtio-keyboard-pci"}
			},
			want: []string{"-kernel " + dir + "/vmlinuz", "-append console=ttyS0,115200 no_timer_check quiet", "-netdev user,restrict=on,guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:8080,id=n0",
				"-drive file=/tmp/a,,b.img,if=none,id=disk0,format=raw", "-device virtio-blk-pci,drive=disk0,serial=S1",
				"-device nvme,drive=disk1,serial=FLNVME1", "-smbios type=1,manufacturer=GM,, Inc,serial=GM-0001", "-device virtio-keyboard-pci"},
			notWant: []string{"bootindex", "tftp="},
		},
		{
			name: "caller netdev",
			opts: func(o *Options) { o.Mode = PXEBIOS; o.Net = Netdev{Args: "tap,ifname=fl0,script=no,downscript=no"} },
			want: []string{"-netdev tap,ifname=fl0,script=no,downscript=no,id=n0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.opts(&o)
			if err := o.defaults(); err != nil {
				t.Fatal(err)
			}
			vm := &VM{opts: o, dir: t.TempDir()}
			vm.monitor = filepath.Join(vm.dir, "m.sock")
			args, err := vm.args()
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Join(args, " ")
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("args lack %q:\n%s", w, line)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(line, w) {
					t.Errorf("args contain %q:\n%s", w, line)
				}
			}
			for _, f := range tt.files {
				if _, err := os.Stat(filepath.Join(vm.dir, "tftp", f)); err != nil {
					t.Errorf("TFTP dir lacks %s: %v", f, err)
				}
			}
		})
	}
	cfg := PXEConfig("console=ttyS0,115200 flashline.debug")
	for _, w := range []string{"KERNEL vmlinuz", "INITRD initrd.gz", "APPEND console=ttyS0,115200 flashline.debug", "IPAPPEND 2"} {
		if !strings.Contains(cfg, w) {
			t.Errorf("pxelinux.cfg lacks %q", w)
		}
	}
}

// Under one HoldLock two guests run at once; a guest outside the hold waits until the hold
// is released; Start under a released hold is refused.
func TestHoldRunsGuestsTogether(t *testing.T) {
	opts, dir := fakeQEMU(t, `echo "start $NAME" >> "$MARK"; sleep 0.5; echo "end $NAME" >> "$MARK"`)
	mark := filepath.Join(dir, "mark")
	t.Setenv("MARK", mark)
	ctx := context.Background()
	hold, err := HoldLock(ctx, opts.LockPath, "pair", nil)
	if err != nil {
		t.Fatal(err)
	}
	var vms []*VM
	for _, name := range []string{"a", "b"} {
		t.Setenv("NAME", name)
		o := opts
		o.Name, o.Hold = name, hold
		vm, err := Start(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		vms = append(vms, vm)
	}
	// A single guest, outside the hold, must wait for it.
	t.Setenv("NAME", "c")
	outside := make(chan error, 1)
	go func() {
		o := opts
		o.Name = "c"
		time.Sleep(100 * time.Millisecond)
		vm, err := Start(ctx, o)
		if err == nil {
			err = vm.Wait()
		}
		outside <- err
	}()
	for _, vm := range vms {
		_ = vm.Wait()
	}
	time.Sleep(200 * time.Millisecond) // c would have started by now without the hold
	hold.Release()
	if err := <-outside; err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(mark)
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(got) != 6 || !strings.HasPrefix(got[0], "start") || !strings.HasPrefix(got[1], "start") ||
		got[4] != "start c" || got[5] != "end c" {
		t.Errorf("want a and b overlapping, then c alone: %q", got)
	}
	o := opts
	o.Hold = hold
	if _, err := Start(ctx, o); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("Start under a released hold = %v", err)
	}
}
