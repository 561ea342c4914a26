// Package qemu boots Flashline devices in QEMU for tests: PXE through the NIC's iPXE ROM and
// pxelinux (BIOS) or syslinux.efi (UEFI with OVMF), a direct -kernel/-initrd boot, or a disk.
// It captures the serial console line by line into a log file, lets a test wait for console
// lines (Expect), press keys through the HMP monitor, and always enforces a timeout.
//
// Only one guest runs at a time on a line test machine: Start takes an exclusive flock on
// LockPath for the guest's whole life, waiting for other guests (of any engineer or test
// binary) to finish. Guests run under TCG with -cpu max (RDRAND: Go's crypto/rand blocks on a
// CPU model without it while the kernel's pool is still empty).
//
// Typical use in a test:
//
//	vm := qemu.StartT(t, qemu.Options{Mode: qemu.PXEBIOS, Append: "flashline.server=http://10.0.2.2:8080"})
//	line, err := vm.Expect(ctx, regexp.MustCompile(`up on \S+`), 90*time.Second)
package qemu

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LockPath is the machine-wide lock every QEMU guest of the project holds while it runs.
const LockPath = "/tmp/flashline-qemu.lock"

// Mode is how the guest boots.
type Mode int

// Boot modes.
const (
	// PXEBIOS: SeaBIOS, the NIC's iPXE ROM, pxelinux.0 over TFTP, then kernel and initrd.
	PXEBIOS Mode = iota
	// PXEUEFI: OVMF's network boot, syslinux.efi over TFTP, then kernel and initrd.
	PXEUEFI
	// Direct: QEMU loads Kernel and Initrd itself (-kernel/-initrd), the fastest boot.
	Direct
	// Disk: boot from the first disk (BIOS), e.g. to check a flashed image.
	Disk
)

func (m Mode) String() string {
	switch m {
	case PXEBIOS:
		return "pxe-bios"
	case PXEUEFI:
		return "pxe-uefi"
	case Direct:
		return "direct"
	case Disk:
		return "disk"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Drive is a disk image attached to the guest.
type Drive struct {
	Path   string
	Format string // raw (default) or qcow2
	// Interface is virtio (default), nvme, ahci or usb.
	Interface string
	Serial    string
	ReadOnly  bool
}

// SMBIOS are the DMI system fields (type 1) the guest's inventory reads.
type SMBIOS struct {
	Manufacturer, Product, Version, Serial, UUID, SKU, Family string
}

// Netdev is the guest NIC's network. The zero value is QEMU user networking (slirp): the
// guest gets 10.0.2.15 by DHCP, the host is 10.0.2.2, and for PXE modes the harness serves
// its TFTP directory.
type Netdev struct {
	// Args, when set, replaces user networking with a caller-given -netdev value without the
	// id, e.g. "tap,ifname=fl-tap0,script=no,downscript=no" (a tap in a test netns).
	Args string
	// Restrict isolates the guest from the host and the outside (user networking's
	// restrict=on); DHCP, TFTP and GuestFwd still work.
	Restrict bool
	// GuestFwd are user networking guestfwd rules, e.g. "tcp:10.0.2.100:80-tcp:127.0.0.1:8080"
	// (the host service must listen before Start).
	GuestFwd []string
	// HostFwd are hostfwd rules, e.g. "tcp:127.0.0.1:2222-:22".
	HostFwd []string
	// TFTPDir overrides the harness' own TFTP directory (e.g. a server's), with BootFile.
	TFTPDir  string
	BootFile string
}

// Options describe one guest. Zero values have working defaults.
type Options struct {
	// Name names the log file; defaults to the mode.
	Name string
	Mode Mode
	// Kernel and Initrd default to $FLASHLINE_KERNEL (else the newest
	// /var/cache/flashline/kernel/boot/vmlinuz-*) and $FLASHLINE_INITRD (else initrd.gz at
	// the repository root).
	Kernel, Initrd string
	// Append is added to the kernel command line after "console=ttyS0,115200" (and, in PXE
	// modes, pxelinux adds BOOTIF= through IPAPPEND 2).
	Append string
	// PXEConfig replaces the generated pxelinux.cfg/default.
	PXEConfig string
	// MemoryMiB defaults to 1024; CPUs to 1 (more is slower under TCG).
	MemoryMiB int
	CPUs      int
	// NIC is the QEMU NIC model: virtio-net-pci (default), e1000, e1000e ...
	NIC string
	// MAC defaults to DefaultMAC.
	MAC string
	Net Netdev
	// NoNIC boots without any NIC (Direct mode only).
	NoNIC  bool
	Disks  []Drive
	SMBIOS *SMBIOS
	// Extra are raw QEMU arguments appended last (-device, -chardev, -usb ...).
	Extra []string
	// Timeout bounds the guest's life; it is killed when it runs out. Default 5 minutes.
	Timeout time.Duration
	// LogDir keeps the console logs; default $FLASHLINE_QEMU_LOGS, else
	// $TMPDIR/flashline-qemu-logs.
	LogDir string
	// OnLine is called with every console line (without the line ending), in order, from
	// the reader goroutine: it must not block.
	OnLine func(line string)
	// QEMU is the emulator binary; default qemu-system-x86_64.
	QEMU string
	// OVMFCode and OVMFVars are the UEFI firmware images (PXEUEFI); defaults from the
	// Debian ovmf package. The vars file is copied: the guest may write it.
	OVMFCode, OVMFVars string
	// LockWait reports that another guest holds the lock (nil: silent).
	LockWait func(holder string)
	// LockPath overrides the machine-wide LockPath (the harness' own tests use a private one).
	LockPath string
	// Hold, when set, is a lock the caller already holds for a group of guests (HoldLock):
	// Start takes none of its own and refuses to start once the hold was released.
	Hold *Hold
}

// DefaultMAC is the guest NIC's MAC unless Options.MAC says otherwise.
const DefaultMAC = "52:54:00:12:34:56"

// VM is a running guest.
type VM struct {
	opts    Options
	cmd     *exec.Cmd
	dir     string // temporary files (TFTP dir, monitor socket, OVMF vars)
	logPath string
	log     *os.File
	start   time.Time
	monitor string

	mu         sync.Mutex
	lines      []string
	expectFrom int           // where the next Expect starts searching
	changed    chan struct{} // closed and replaced whenever lines grow or the guest exits
	exited     bool
	waitErr    error

	done    chan struct{}
	stdin   io.WriteCloser // the serial port's input
	lock    *os.File
	cancel  context.CancelFunc
	timeout bool
}

// Start boots a guest. The context bounds the guest's life like Options.Timeout; Start itself
// returns once QEMU runs (after waiting for the machine-wide lock).
func Start(ctx context.Context, opts Options) (*VM, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "flashline-qemu-")
	if err != nil {
		return nil, err
	}
	vm := &VM{opts: opts, dir: dir, changed: make(chan struct{}), done: make(chan struct{}), monitor: filepath.Join(dir, "monitor.sock")}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	args, err := vm.args()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	vm.log, err = os.CreateTemp(opts.LogDir, fmt.Sprintf("%s-%s-*.log", sanitize(opts.Name), time.Now().Format("150405")))
	if err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	vm.logPath = vm.log.Name()
	fmt.Fprintf(vm.log, "# %s %s\n", opts.QEMU, strings.Join(args, " "))

	if opts.Hold != nil {
		if !opts.Hold.held() {
			vm.log.Close()
			return nil, errors.New("qemu: the lock hold for this guest was already released")
		}
	} else if vm.lock, err = acquireLock(ctx, opts.LockPath, opts.Name, opts.LockWait); err != nil {
		vm.log.Close()
		return nil, err
	}
	runCtx, cancel := context.WithTimeout(ctx, opts.Timeout)
	vm.cancel = cancel
	cmd := exec.Command(opts.QEMU, args...)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		releaseLock(vm.lock)
		return nil, err
	}
	vm.stdin = stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		releaseLock(vm.lock)
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	vm.start = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		releaseLock(vm.lock)
		vm.log.Close()
		return nil, fmt.Errorf("start %s: %w", opts.QEMU, err)
	}
	vm.cmd = cmd
	ok = true
	readerDone := make(chan struct{})
	go vm.read(stdout, readerDone)
	go func() {
		select {
		case <-runCtx.Done():
			if errors.Is(runCtx.Err(), context.DeadlineExceeded) {
				vm.mu.Lock()
				vm.timeout = true
				vm.mu.Unlock()
			}
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-vm.done:
		}
	}()
	go func() {
		<-readerDone
		err := cmd.Wait()
		releaseLock(vm.lock)
		vm.mu.Lock()
		if vm.timeout {
			err = fmt.Errorf("guest killed after the %s timeout", opts.Timeout)
		}
		vm.exited = true
		vm.waitErr = err
		fmt.Fprintf(vm.log, "# qemu exited after %.1fs: %v\n", time.Since(vm.start).Seconds(), err)
		vm.log.Close()
		close(vm.changed)
		vm.mu.Unlock()
		cancel()
		os.RemoveAll(vm.dir)
		close(vm.done)
	}()
	return vm, nil
}

func (o *Options) defaults() error {
	if o.QEMU == "" {
		o.QEMU = "qemu-system-x86_64"
	}
	if o.LockPath == "" {
		o.LockPath = LockPath
	}
	if o.Name == "" {
		o.Name = o.Mode.String()
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 1
	}
	if o.NIC == "" {
		o.NIC = "virtio-net-pci"
	}
	if o.MAC == "" {
		o.MAC = DefaultMAC
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.LogDir == "" {
		o.LogDir = os.Getenv("FLASHLINE_QEMU_LOGS")
	}
	if o.LogDir == "" {
		o.LogDir = filepath.Join(os.TempDir(), "flashline-qemu-logs")
	}
	if o.Mode != Disk {
		if o.Kernel == "" {
			k, err := DefaultKernel()
			if err != nil {
				return err
			}
			o.Kernel = k
		}
		if o.Initrd == "" {
			i, err := DefaultInitrd()
			if err != nil {
				return err
			}
			o.Initrd = i
		}
		for _, f := range []string{o.Kernel, o.Initrd} {
			if _, err := os.Stat(f); err != nil {
				return fmt.Errorf("boot file: %w", err)
			}
		}
	}
	if o.Mode == PXEUEFI {
		if o.OVMFCode == "" {
			o.OVMFCode = firstExisting("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd")
		}
		if o.OVMFVars == "" {
			o.OVMFVars = firstExisting("/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd")
		}
		if o.OVMFCode == "" || o.OVMFVars == "" {
			return errors.New("PXEUEFI needs OVMF (apt-get install ovmf)")
		}
	}
	if o.NoNIC && o.Mode != Direct && o.Mode != Disk {
		return errors.New("NoNIC needs Direct or Disk mode")
	}
	return nil
}

// KernelDir is where scripts/setup unpacks Debian's kernel package; $FLASHLINE_KERNEL_DIR
// (exported by the Makefile from KERNEL_DIR) overrides it.
func KernelDir() string {
	if d := os.Getenv("FLASHLINE_KERNEL_DIR"); d != "" {
		return d
	}
	return "/var/cache/flashline/kernel"
}

// KernelRelease returns the kernel release to boot and take modules from: $FLASHLINE_KVER, else
// the newest release under KernelDir()/lib/modules. It is never written down anywhere, because
// Debian's kernel updates change it.
func KernelRelease() (string, error) {
	if v := os.Getenv("FLASHLINE_KVER"); v != "" {
		return v, nil
	}
	ents, err := os.ReadDir(filepath.Join(KernelDir(), "lib/modules"))
	if err != nil {
		return "", fmt.Errorf("no kernel modules under %s (run scripts/setup or set FLASHLINE_KVER): %w", KernelDir(), err)
	}
	var rels []string
	for _, e := range ents {
		if e.IsDir() {
			rels = append(rels, e.Name())
		}
	}
	if len(rels) == 0 {
		return "", fmt.Errorf("no kernel modules under %s: run scripts/setup", KernelDir())
	}
	slices.SortFunc(rels, compareVersions)
	return rels[len(rels)-1], nil
}

// ModulesDir returns the module tree of KernelRelease(), the one holding modules.dep.
func ModulesDir() (string, error) {
	rel, err := KernelRelease()
	if err != nil {
		return "", err
	}
	return filepath.Join(KernelDir(), "lib/modules", rel), nil
}

// DefaultKernel returns $FLASHLINE_KERNEL or the kernel image of KernelRelease().
func DefaultKernel() (string, error) {
	if k := os.Getenv("FLASHLINE_KERNEL"); k != "" {
		return k, nil
	}
	rel, err := KernelRelease()
	if err != nil {
		return "", fmt.Errorf("no kernel: set FLASHLINE_KERNEL or run scripts/setup: %w", err)
	}
	k := filepath.Join(KernelDir(), "boot", "vmlinuz-"+rel)
	if _, err := os.Stat(k); err != nil {
		return "", fmt.Errorf("no kernel: set FLASHLINE_KERNEL or run scripts/setup: %w", err)
	}
	return k, nil
}

// compareVersions orders kernel releases as `sort -V` does for them: runs of digits compare
// as numbers, so 6.1.0-10 sorts after 6.1.0-9.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(a[:da], 10, 64)
			nb, _ := strconv.ParseUint(b[:db], 10, 64)
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// DefaultInitrd returns $FLASHLINE_INITRD or initrd.gz at the repository root (found from
// the working directory upwards through go.mod).
func DefaultInitrd() (string, error) {
	if i := os.Getenv("FLASHLINE_INITRD"); i != "" {
		return i, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "initrd.gz"), nil
}

// RepoRoot returns the directory holding the repository's go.mod, searching upwards from the
// working directory (go test runs in the package directory).
func RepoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/flashline/flashline") {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("repository root (go.mod of github.com/flashline/flashline) not found")
		}
		d = p
	}
}

func firstExisting(paths ...string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// args builds QEMU's command line and prepares the files it needs.
func (vm *VM) args() ([]string, error) {
	o := vm.opts
	args := []string{
		"-accel", "tcg", "-cpu", "max",
		"-m", strconv.Itoa(o.MemoryMiB), "-smp", strconv.Itoa(o.CPUs),
		"-display", "none", "-vga", "none",
		"-serial", "stdio",
		"-monitor", "unix:" + vm.monitor + ",server=on,wait=off",
		"-no-reboot",
	}
	// no_timer_check: under TCG on a loaded 2-core host the kernel's IO-APIC timer check can
	// miss its ticks and panic ("IO-APIC + timer doesn't work!"), seen in CI.
	cmdline := strings.TrimSpace("console=ttyS0,115200 no_timer_check " + o.Append)
	switch o.Mode {
	case Direct:
		args = append(args, "-kernel", o.Kernel, "-initrd", o.Initrd, "-append", cmdline)
	case PXEBIOS, PXEUEFI:
		if o.Net.Args == "" && o.Net.TFTPDir == "" {
			if err := vm.writeTFTP(cmdline); err != nil {
				return nil, err
			}
		}
		if o.Mode == PXEBIOS {
			args = append(args, "-boot", "n")
		} else {
			vars := filepath.Join(vm.dir, "OVMF_VARS.fd")
			if err := copyFile(o.OVMFVars, vars); err != nil {
				return nil, fmt.Errorf("OVMF vars: %w", err)
			}
			args = append(args,
				"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+o.OVMFCode,
				"-drive", "if=pflash,format=raw,unit=1,file="+vars)
		}
	case Disk:
		if len(o.Disks) == 0 {
			return nil, errors.New("Disk mode needs a disk")
		}
		args = append(args, "-boot", "c")
	}
	if !o.NoNIC {
		netdev := o.Net.Args
		if netdev == "" {
			netdev = "user"
			if o.Net.Restrict {
				netdev += ",restrict=on"
			}
			if o.Mode == PXEBIOS || o.Mode == PXEUEFI {
				dir, boot := o.Net.TFTPDir, o.Net.BootFile
				if dir == "" {
					dir = filepath.Join(vm.dir, "tftp")
				}
				if boot == "" {
					boot = "pxelinux.0"
					if o.Mode == PXEUEFI {
						boot = "syslinux.efi"
					}
				}
				netdev += ",tftp=" + dir + ",bootfile=" + boot
			}
			for _, f := range o.Net.GuestFwd {
				netdev += ",guestfwd=" + f
			}
			for _, f := range o.Net.HostFwd {
				netdev += ",hostfwd=" + f
			}
		}
		dev := o.NIC + ",netdev=n0,mac=" + o.MAC
		if o.Mode == PXEUEFI || o.Mode == PXEBIOS {
			dev += ",bootindex=1"
		}
		args = append(args, "-netdev", netdev+",id=n0", "-device", dev)
	} else {
		args = append(args, "-nic", "none")
	}
	usb := false
	for i, d := range o.Disks {
		id := fmt.Sprintf("disk%d", i)
		format := d.Format
		if format == "" {
			format = "raw"
		}
		drive := fmt.Sprintf("file=%s,if=none,id=%s,format=%s", qemuEscape(d.Path), id, format)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		args = append(args, "-drive", drive)
		serial := ""
		if d.Serial != "" {
			serial = ",serial=" + qemuEscape(d.Serial)
		}
		boot := ""
		if o.Mode == Disk && i == 0 {
			boot = ",bootindex=0"
		}
		switch d.Interface {
		case "", "virtio":
			args = append(args, "-device", "virtio-blk-pci,drive="+id+serial+boot)
		case "nvme":
			if serial == "" {
				serial = fmt.Sprintf(",serial=FLNVME%d", i)
			}
			args = append(args, "-device", "nvme,drive="+id+serial+boot)
		case "ahci":
			args = append(args, "-device", fmt.Sprintf("ich9-ahci,id=ahci%d", i), "-device", fmt.Sprintf("ide-hd,drive=%s,bus=ahci%d.0%s%s", id, i, serial, boot))
		case "usb":
			if !usb {
				args = append(args, "-device", "qemu-xhci,id=xhci")
				usb = true
			}
			args = append(args, "-device", "usb-storage,bus=xhci.0,drive="+id+serial+boot)
		default:
			return nil, fmt.Errorf("disk %s: unknown interface %q (virtio, nvme, ahci, usb)", d.Path, d.Interface)
		}
	}
	if s := o.SMBIOS; s != nil {
		v := "type=1"
		for _, kv := range [][2]string{{"manufacturer", s.Manufacturer}, {"product", s.Product}, {"version", s.Version}, {"serial", s.Serial}, {"uuid", s.UUID}, {"sku", s.SKU}, {"family", s.Family}} {
			if kv[1] != "" {
				v += "," + kv[0] + "=" + qemuEscape(kv[1])
			}
		}
		args = append(args, "-smbios", v)
	}
	return append(args, o.Extra...), nil
}

// qemuEscape doubles commas, QEMU's escape inside option values.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Syslinux files from Debian's pxelinux, syslinux-common and syslinux-efi packages.
const (
	PXELinux    = "/usr/lib/PXELINUX/pxelinux.0"
	LDLinuxC32  = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
	SyslinuxEFI = "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi"
	LDLinuxE64  = "/usr/lib/syslinux/modules/efi64/ldlinux.e64"
)

// PXEConfig returns the pxelinux.cfg/default the harness serves: boot "vmlinuz" and
// "initrd.gz" with the command line, and IPAPPEND 2 so that pxelinux adds BOOTIF=01-<mac>.
// SERIAL makes pxelinux's own messages (a missing file ...) reach the serial console: the
// firmware and iPXE print on the (absent) screen only.
func PXEConfig(cmdline string) string {
	return "SERIAL 0 115200\nDEFAULT flashline\nPROMPT 0\nTIMEOUT 0\nLABEL flashline\n  KERNEL vmlinuz\n  INITRD initrd.gz\n  APPEND " + cmdline + "\n  IPAPPEND 2\n"
}

// WriteTFTPDir fills dir with what a PXE boot needs: the syslinux loaders (BIOS and UEFI),
// kernel as vmlinuz, initrd as initrd.gz and pxelinux.cfg/default (pxecfg, or PXEConfig of
// cmdline when empty). Servers' tests can use it for their own TFTP roots.
func WriteTFTPDir(dir, kernel, initrd, cmdline, pxecfg string) error {
	if err := os.MkdirAll(filepath.Join(dir, "pxelinux.cfg"), 0o755); err != nil {
		return err
	}
	for src, dst := range map[string]string{PXELinux: "pxelinux.0", LDLinuxC32: "ldlinux.c32", SyslinuxEFI: "syslinux.efi", LDLinuxE64: "ldlinux.e64", kernel: "vmlinuz", initrd: "initrd.gz"} {
		if err := linkOrCopy(src, filepath.Join(dir, dst)); err != nil {
			if src == SyslinuxEFI || src == LDLinuxE64 {
				continue // BIOS boots do without; PXEUEFI reports the missing loader
			}
			return fmt.Errorf("TFTP dir: %w", err)
		}
	}
	if pxecfg == "" {
		pxecfg = PXEConfig(cmdline)
	}
	return os.WriteFile(filepath.Join(dir, "pxelinux.cfg", "default"), []byte(pxecfg), 0o644)
}

func (vm *VM) writeTFTP(cmdline string) error {
	o := vm.opts
	if o.Mode == PXEUEFI {
		for _, f := range []string{SyslinuxEFI, LDLinuxE64} {
			if _, err := os.Stat(f); err != nil {
				return fmt.Errorf("PXEUEFI: %w (apt-get install syslinux-efi syslinux-common)", err)
			}
		}
	}
	return WriteTFTPDir(filepath.Join(vm.dir, "tftp"), o.Kernel, o.Initrd, cmdline, o.PXEConfig)
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyFile(src, dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// read splits the console into lines, logs them with the time since start and keeps them for
// Expect. Carriage returns (iPXE, pxelinux progress) end a line too.
func (vm *VM) read(r io.Reader, done chan<- struct{}) {
	defer close(done)
	br := bufio.NewReaderSize(r, 64*1024)
	var cur []byte
	emit := func() {
		line := strings.TrimRight(string(cur), "\r")
		cur = cur[:0]
		if line == "" {
			return
		}
		fmt.Fprintf(vm.log, "[%7.2f] %s\n", time.Since(vm.start).Seconds(), line)
		vm.mu.Lock()
		vm.lines = append(vm.lines, line)
		close(vm.changed)
		vm.changed = make(chan struct{})
		vm.mu.Unlock()
		if vm.opts.OnLine != nil {
			vm.opts.OnLine(line)
		}
	}
	for {
		b, err := br.ReadByte()
		if err != nil {
			emit()
			return
		}
		switch b {
		case '\n', '\r':
			emit()
		default:
			// Drop terminal escape noise' control bytes except tab.
			if b >= 0x20 || b == '\t' || b == 0x1b {
				cur = append(cur, b)
			}
		}
	}
}

// LogPath is the console log file (the QEMU command line first, then "[seconds] line").
func (vm *VM) LogPath() string { return vm.logPath }

// Elapsed is the time since QEMU started.
func (vm *VM) Elapsed() time.Duration { return time.Since(vm.start) }

// Lines returns the console lines so far.
func (vm *VM) Lines() []string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]string(nil), vm.lines...)
}

// Cursor returns the number of lines so far: pass it to ExpectFrom to wait only for lines
// printed after this point.
func (vm *VM) Cursor() int {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return len(vm.lines)
}

// ErrExited is returned by Expect when the guest ended before the line appeared.
var ErrExited = errors.New("guest exited")

// Expect waits up to timeout for a console line matching re, searching from the line after
// the previous Expect's match, and returns the line. The error says what was waited for and
// shows the last console lines.
func (vm *VM) Expect(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (string, error) {
	vm.mu.Lock()
	from := vm.expectFrom
	vm.mu.Unlock()
	line, idx, err := vm.ExpectFrom(ctx, from, re, timeout)
	if err == nil {
		vm.mu.Lock()
		vm.expectFrom = idx + 1
		vm.mu.Unlock()
	}
	return line, err
}

// ExpectSubmatch is Expect returning re's submatches of the line.
func (vm *VM) ExpectSubmatch(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	line, err := vm.Expect(ctx, re, timeout)
	if err != nil {
		return nil, err
	}
	return re.FindStringSubmatch(line), nil
}

// ExpectFrom waits for a line matching re at index from or later and returns it with its
// index. It does not move Expect's position.
func (vm *VM) ExpectFrom(ctx context.Context, from int, re *regexp.Regexp, timeout time.Duration) (string, int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		vm.mu.Lock()
		for i := from; i < len(vm.lines); i++ {
			if re.MatchString(vm.lines[i]) {
				l := vm.lines[i]
				vm.mu.Unlock()
				return l, i, nil
			}
		}
		from = max(from, len(vm.lines))
		exited, waitErr, changed := vm.exited, vm.waitErr, vm.changed
		vm.mu.Unlock()
		if exited {
			return "", -1, fmt.Errorf("waiting for /%s/: %w (%v)%s", re, ErrExited, waitErr, vm.tail(15))
		}
		select {
		case <-changed:
		case <-t.C:
			return "", -1, fmt.Errorf("no console line matching /%s/ within %s%s", re, timeout, vm.tail(15))
		case <-ctx.Done():
			return "", -1, fmt.Errorf("waiting for /%s/: %w%s", re, ctx.Err(), vm.tail(15))
		}
	}
}

// tail formats the last n console lines for error messages.
func (vm *VM) tail(n int) string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	start := max(0, len(vm.lines)-n)
	var b strings.Builder
	fmt.Fprintf(&b, "\nlast console lines (full log %s):", vm.logPath)
	for _, l := range vm.lines[start:] {
		b.WriteString("\n  | " + l)
	}
	return b.String()
}

// HMP runs a human monitor command (e.g. "sendkey ctrl-alt-delete", "info status") and
// returns its output.
func (vm *VM) HMP(ctx context.Context, command string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", vm.monitor)
	if err != nil {
		return "", fmt.Errorf("monitor: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	br := bufio.NewReader(c)
	if _, err := readPrompt(br); err != nil {
		return "", fmt.Errorf("monitor greeting: %w", err)
	}
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		return "", fmt.Errorf("monitor: %w", err)
	}
	out, err := readPrompt(br)
	if err != nil {
		return "", fmt.Errorf("monitor %q: %w", command, err)
	}
	// The monitor echoes the command line first.
	if i := strings.Index(out, command); i >= 0 {
		out = out[i+len(command):]
	}
	return strings.TrimSpace(stripANSI(out)), nil
}

// SendKey presses and releases a key or combination through the monitor, with QEMU's key
// names: "ret", "a", "spc", "esc", "f1", "ctrl-alt-delete". The guest sees it on its keyboard
// (PS/2, or virtio-keyboard-pci / usb-kbd when added with Extra).
//
// For the ACPI power button (the "button" driver's input device) use PowerButton.
func (vm *VM) SendKey(ctx context.Context, key string) error {
	out, err := vm.HMP(ctx, "sendkey "+key)
	if err != nil {
		return err
	}
	if out != "" {
		return fmt.Errorf("sendkey %s: %s", key, out)
	}
	return nil
}

// Type sends text to the guest's serial console (its /dev/console input), e.g. "retry\n"
// for the agent's rescue console or an answer to an operator prompt.
func (vm *VM) Type(text string) error {
	select {
	case <-vm.done:
		return ErrExited
	default:
	}
	if _, err := io.WriteString(vm.stdin, text); err != nil {
		return fmt.Errorf("type on the serial console: %w", err)
	}
	return nil
}

// PowerButton presses the machine's ACPI power button (HMP system_powerdown): the guest sees
// KEY_POWER on the "Power Button" input device.
func (vm *VM) PowerButton(ctx context.Context) error {
	_, err := vm.HMP(ctx, "system_powerdown")
	return err
}

// readPrompt reads until the monitor's "(qemu) " prompt.
func readPrompt(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		c, err := br.ReadByte()
		if err != nil {
			return b.String(), err
		}
		b.WriteByte(c)
		if strings.HasSuffix(b.String(), "(qemu) ") {
			return strings.TrimSuffix(b.String(), "(qemu) "), nil
		}
	}
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]|\x1b[^\[]`)

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// Wait waits for QEMU to exit and returns its error (nil after a clean guest poweroff or
// reboot with -no-reboot).
func (vm *VM) Wait() error {
	<-vm.done
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.waitErr
}

// Done is closed when the guest has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Kill stops the guest now and waits for it to be gone (the lock is released then).
func (vm *VM) Kill() error {
	select {
	case <-vm.done:
		return nil
	default:
	}
	_ = syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
	<-vm.done
	return nil
}

// acquireLock takes the machine-wide QEMU lock, waiting while another guest holds it. The
// wait is a blocking flock(2): polling with LOCK_NB would lose every race against the
// blocking waiters of flock(1) that other scripts use, and starve.
func acquireLock(ctx context.Context, path, who string, onWait func(string)) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("QEMU lock %s: %w", path, err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err != nil && !errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("QEMU lock %s: %w", path, err)
	}
	if err != nil {
		if onWait != nil {
			b, _ := os.ReadFile(path)
			if len(bytes.TrimSpace(b)) == 0 {
				b = []byte("another process (flock(1) or a harness that names no holder)")
			}
			onWait(strings.TrimSpace(string(b)))
		}
		got := make(chan error, 1)
		var mu sync.Mutex
		abandoned := false
		go func() {
			err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
			mu.Lock()
			defer mu.Unlock()
			if abandoned {
				// Start gave up waiting: pass the lock on at once.
				f.Close()
				return
			}
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("QEMU lock %s: %w", path, err)
			}
		case <-ctx.Done():
			mu.Lock()
			select {
			case err := <-got:
				// Acquired just now: release it.
				mu.Unlock()
				if err == nil {
					_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				}
				f.Close()
			default:
				abandoned = true
				mu.Unlock()
			}
			return nil, fmt.Errorf("waiting for the QEMU lock %s: %w", path, ctx.Err())
		}
	}
	// Say who holds it, for whoever waits next.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d (%s) %s since %s\n", os.Getpid(), filepath.Base(os.Args[0]), who, time.Now().Format(time.TimeOnly))), 0)
	return f, nil
}

func releaseLock(f *os.File) {
	if f == nil {
		return
	}
	_ = f.Truncate(0) // the holder's name is stale once released
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	f.Close()
}
