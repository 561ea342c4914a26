//go:build e2e

package pxecfg_test

// TestQEMUNetboot boots QEMU guests (SeaBIOS + iPXE ROM, and OVMF) from the
// line server's own DHCP, TFTP and pxelinux.cfg generator, inside a private
// network namespace, and checks that the kernel starts with the command line
// pxecfg generated (flashline.server= and, from IPAPPEND 2, BOOTIF=), or that
// a provisioned device is sent to LOCALBOOT and fetches no kernel.
//
// The test re-executes itself inside the namespace (ip netns exec), so that
// every socket, including the TFTP server's per-transfer ones, lives there.
// One guest at a time: testbed/qemu.Boot holds the machine-wide QEMU lock.

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashline/flashline/server/dhcp"
	"github.com/flashline/flashline/server/pxecfg"
	"github.com/flashline/flashline/server/tftp"
	"github.com/flashline/flashline/testbed/netlab"
	"github.com/flashline/flashline/testbed/qemu"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

const (
	childEnv  = "FLASHLINE_NETBOOT_TAP"
	guestMAC  = "52:54:00:12:34:56"
	serverURL = "http://10.77.0.1:8080"
)

func TestQEMUNetboot(t *testing.T) {
	if tap := os.Getenv(childEnv); tap != "" {
		runInNamespace(t, tap)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and a tap device")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	ctx := context.Background()
	lab, err := netlab.New(ctx, netlab.Config{NS: fmt.Sprintf("flnetboot-%d", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	// The child runs the same subtests (-run TestQEMUNetboot/UEFI works)
	// within what is left of this test's deadline; waiting for the QEMU
	// lock behind other engineers' guests can take minutes.
	run := "^TestQEMUNetboot$"
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
		run = f.Value.String()
	}
	timeout := 30 * time.Minute
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) - 10*time.Second
	}
	args := []string{"-test.run", run, "-test.v", "-test.timeout", timeout.String()}
	cmd := lab.Command(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+lab.Tap)
	// Stream the child's output so that a long wait for the QEMU lock
	// shows progress.
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("netboot inside the namespace failed: %v", err)
	}
}

// state is the device store: one mode for every device.
type state struct {
	mu   sync.Mutex
	mode pxecfg.Mode
}

func (s *state) BootMode(context.Context, net.HardwareAddr) (pxecfg.Mode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode, nil
}

// logTail collects the servers' log lines so the test can look for them.
type logTail struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	os.Stderr.Write(p)
	return l.buf.Write(p)
}

func (l *logTail) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

func (l *logTail) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

func runInNamespace(t *testing.T, tap string) {
	root := t.TempDir()
	kernel := os.Getenv("FLASHLINE_KERNEL")
	if kernel == "" {
		m, _ := filepath.Glob("/var/cache/flashline/kernel/boot/vmlinuz-*")
		if len(m) == 0 {
			t.Skip("no kernel: set FLASHLINE_KERNEL or run scripts/setup")
		}
		kernel = m[0]
	}
	for dst, src := range map[string]string{
		"pxelinux.0":   "/usr/lib/PXELINUX/pxelinux.0",
		"lpxelinux.0":  "/usr/lib/PXELINUX/lpxelinux.0",
		"ldlinux.c32":  "/usr/lib/syslinux/modules/bios/ldlinux.c32",
		"syslinux.efi": "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi",
		"ldlinux.e64":  "/usr/lib/syslinux/modules/efi64/ldlinux.e64",
		"vmlinuz":      kernel,
	} {
		// Copies, not symlinks: the TFTP server refuses links that leave
		// its root.
		b, err := os.ReadFile(src)
		if err != nil {
			t.Skipf("missing netboot file: %v", err)
		}
		if err := os.WriteFile(filepath.Join(root, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An empty initramfs: enough for the kernel to unpack it and then
	// panic for want of an init, which panic=-1 turns into a reboot that
	// -no-reboot turns into QEMU exiting.
	if err := os.WriteFile(filepath.Join(root, "initrd.gz"), emptyInitramfs(t), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second address for the "plant" DHCP server of the proxy cases.
	if out, err := exec.Command("ip", "addr", "add", "10.77.0.2/24", "dev", tap).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v %s", err, out)
	}

	logs := &logTail{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	st := &state{mode: pxecfg.Provision}
	pxeCfg := pxecfg.Config{
		ServerURL:  serverURL,
		Consoles:   []string{"ttyS0,115200"},
		SerialPort: "0 115200",
		ExtraArgs:  []string{"panic=-1"},
	}
	tftpGen, err := pxecfg.New(pxeCfg, pxecfg.Deps{State: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// For lpxelinux.0: the same, with the kernel and initrd over HTTP.
	pxeCfg.HTTPBase = "http://10.77.0.1:8080/boot/"
	httpGen, err := pxecfg.New(pxeCfg, pxecfg.Deps{State: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var gen atomic.Pointer[pxecfg.Generator]
	gen.Store(tftpGen)
	tftpSrv, err := tftp.New(tftp.Config{ListenAddr: "0.0.0.0:69", Interface: tap, Root: root},
		tftp.Deps{Logger: log, Virtual: func(ctx context.Context, name string) ([]byte, error) {
			return gen.Load().TFTPFile(ctx, name)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tftpSrv.Serve(ctx)
	hl, err := net.Listen("tcp", "10.77.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	files := http.StripPrefix("/boot/", http.FileServer(http.Dir(root)))
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Info("http request", "path", r.URL.Path, "client", r.RemoteAddr)
		files.ServeHTTP(w, r)
	})}
	go hs.Serve(hl)
	defer hs.Close()

	cases := []struct {
		name  string
		mode  dhcp.Mode
		uefi  bool
		state pxecfg.Mode
		http  bool // lpxelinux.0, kernel and initrd over HTTP
		// edk2 drops the NIC's iPXE option ROM, so that OVMF's own
		// PXE client (PxeBcDxe) boots, as on most real UEFI machines.
		edk2 bool
	}{
		{"BIOS full DHCP", dhcp.ModeFull, false, pxecfg.Provision, false, false},
		{"BIOS proxyDHCP", dhcp.ModeProxy, false, pxecfg.Provision, false, false},
		{"BIOS LOCALBOOT", dhcp.ModeFull, false, pxecfg.LocalBoot, false, false},
		{"BIOS lpxelinux HTTP", dhcp.ModeFull, false, pxecfg.Provision, true, false},
		{"UEFI full DHCP", dhcp.ModeFull, true, pxecfg.Provision, false, false},
		{"UEFI proxyDHCP", dhcp.ModeProxy, true, pxecfg.Provision, false, false},
		{"UEFI LOCALBOOT", dhcp.ModeFull, true, pxecfg.LocalBoot, false, false},
		{"UEFI EDK2 PXE proxyDHCP", dhcp.ModeProxy, true, pxecfg.Provision, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gen.Store(tftpGen)
			boot := dhcp.BootFiles{}
			if tc.http {
				gen.Store(httpGen)
				boot.BIOS = "lpxelinux.0"
			}
			st.mu.Lock()
			st.mode = tc.state
			st.mu.Unlock()
			logs.reset()
			cfg := dhcp.Config{
				Mode:       tc.mode,
				Interface:  tap,
				ServerIP:   netip.MustParseAddr("10.77.0.1"),
				RangeStart: netip.MustParseAddr("10.77.0.100"),
				RangeEnd:   netip.MustParseAddr("10.77.0.150"),
				LeaseFile:  filepath.Join(t.TempDir(), "leases.json"),
				Boot:       boot,
			}
			srv, err := dhcp.New(cfg, dhcp.Deps{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			cctx, ccancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); srv.Serve(cctx) }()
			var plant *server4.Server
			if tc.mode == dhcp.ModeProxy {
				plant = plantDHCP(t, tap)
				wg.Add(1)
				go func() { defer wg.Done(); plant.Serve() }()
			}
			defer func() {
				ccancel()
				if plant != nil {
					plant.Close()
				}
				wg.Wait()
			}()
			var localbootAt time.Time
			serial, err := bootGuest(t, tc.uefi, tc.edk2, func(serial string) bool {
				if tc.state == pxecfg.LocalBoot {
					// Give the firmware time to (wrongly) fetch a
					// kernel after the LOCALBOOT file.
					if localbootAt.IsZero() && logs.contains("mode=localboot") {
						localbootAt = time.Now()
					}
					return !localbootAt.IsZero() && time.Since(localbootAt) > 20*time.Second
				}
				return strings.Contains(serial, "Kernel panic") || strings.Contains(serial, "Initramfs unpacking failed")
			})
			t.Logf("serial console:\n%s", serial)
			if err != nil {
				t.Fatal(err)
			}
			if tc.state == pxecfg.LocalBoot {
				if !logs.contains("mode=localboot") {
					t.Error("no LOCALBOOT config served")
				}
				if logs.contains("file=vmlinuz") {
					t.Error("a device set to LOCALBOOT fetched the kernel")
				}
				return
			}
			var cmdline string
			for _, l := range strings.Split(serial, "\n") {
				if i := strings.Index(l, "Command line: "); i >= 0 {
					cmdline = l[i:]
				}
			}
			for _, want := range []string{"flashline.server=" + serverURL, "BOOTIF=01-" + strings.ReplaceAll(guestMAC, ":", "-"), "console=ttyS0,115200"} {
				if !strings.Contains(cmdline, want) {
					t.Errorf("kernel command line %q lacks %q", cmdline, want)
				}
			}
			if strings.Contains(serial, "Initramfs unpacking failed") {
				t.Error("initramfs did not arrive intact")
			}
			if tc.http {
				if !logs.contains("path=/boot/vmlinuz") || !logs.contains("path=/boot/initrd.gz") {
					t.Error("kernel and initrd not fetched over HTTP")
				}
				if logs.contains("file=vmlinuz") {
					t.Error("lpxelinux fetched the kernel over TFTP")
				}
			}
			// EDK2 takes the file from our proxy offer (discovery
			// control 8 and a file name) without asking port 4011.
			if tc.edk2 && !logs.contains("ipxe=false") {
				t.Error("the firmware was iPXE, not EDK2's PXE client")
			}
			if tc.mode == dhcp.ModeProxy && !logs.contains("proxyDHCP") {
				t.Error("the boot did not go through the proxy")
			}
		})
	}
}

// plantDHCP stands in for the plant's own DHCP server in the proxy cases: it
// hands out 10.77.0.50 and knows nothing about PXE.
func plantDHCP(t *testing.T, tap string) *server4.Server {
	plantIP := net.IPv4(10, 77, 0, 2)
	handler := func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		var mt dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			mt = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(plantIP) {
				return
			}
			mt = dhcpv4.MessageTypeAck
		default:
			return
		}
		r, err := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(mt),
			dhcpv4.WithYourIP(net.IPv4(10, 77, 0, 50)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(plantIP)),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithLeaseTime(3600))
		if err != nil {
			return
		}
		conn.WriteTo(r.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
	}
	conn, err := server4.NewIPv4UDPConn(tap, &net.UDPAddr{Port: dhcpv4.ServerPort})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server4.NewServer("", nil, handler, server4.WithConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bootGuest runs one QEMU guest on the tap until done, called with the serial
// output so far on every line and every half second, reports the end, or a
// timeout. It returns the serial output.
func bootGuest(t *testing.T, uefi, noROM bool, done func(serial string) bool) (string, error) {
	fw := qemu.BIOS
	if uefi {
		fw = qemu.UEFI
	}
	nic := "virtio-net-pci,netdev=n0,mac=" + guestMAC
	if noROM {
		nic += ",romfile="
	}
	var serial strings.Builder
	start := time.Now()
	res, err := qemu.Boot(context.Background(), qemu.BootConfig{
		Firmware: fw, Attach: qemu.PXE, Memory: 512, Timeout: 180 * time.Second, Poll: 500 * time.Millisecond,
		Net: []string{"-netdev", "tap,id=n0,ifname=" + os.Getenv(childEnv) + ",script=no,downscript=no", "-device", nic},
	}, func(line string) bool {
		if line != "" {
			fmt.Fprintf(&serial, "[%5.1fs] %s\n", time.Since(start).Seconds(), line)
		}
		return done(serial.String())
	})
	if err != nil {
		return serial.String(), fmt.Errorf("guest did not get there: %w", err)
	}
	t.Logf("guest reached the end in %v", res.Elapsed.Round(100*time.Millisecond))
	return serial.String(), nil
}

// emptyInitramfs is a gzip'd newc cpio archive holding only its trailer.
func emptyInitramfs(t *testing.T) []byte {
	name := "TRAILER!!!\x00"
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(name), 0)
	rec := hdr + name
	for len(rec)%4 != 0 {
		rec += "\x00"
	}
	for len(rec)%512 != 0 {
		rec += "\x00"
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(rec))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
