package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/flashline/flashline/agent/kmod"
	"golang.org/x/sys/unix"
)

// cmdBTBluez makes a Bluetooth peer out of BlueZ's own code instead of the Go emulator:
// btvirt (bluez-test-tools) creates two vhci controllers backed by BlueZ's controller
// emulator (btdev), which hear each other's inquiry scans and advertisements; the second
// (the one the probe picks) is the device's controller, the first the peer, which btmgmt (BlueZ's management
// client, over the kernel's management socket like the probe) names, makes discoverable
// and sets advertising. The peer's address is written to --address-file.
func cmdBTBluez(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("bt-bluez", flag.ContinueOnError)
	btvirt := fs.String("btvirt", "/usr/bin/btvirt", "BlueZ's btvirt")
	btmgmt := fs.String("btmgmt", "/usr/bin/btmgmt", "BlueZ's btmgmt")
	name := fs.String("name", "bluez-peer", "the peer's name")
	addrFile := fs.String("address-file", filepath.Join(readyDir, "bluez-peer"), "file to write the peer's address to")
	ready := fs.String("ready", "", "file to create once the peer advertises")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := kmod.Load(ctx, "hci_vhci"); err != nil {
		slog.Warn("bt-bluez: load hci_vhci", "err", err)
	}
	// BlueZ's controller emulator does its LE crypto over AF_ALG (ecb(aes), cmac(aes)):
	// without these btdev_create fails and btvirt says "Failed to open Virtual HCI device".
	// Nothing in the initramfs loads them on demand (no modprobe).
	if err := kmod.Load(ctx, "algif_hash", "algif_skcipher", "ecb", "cmac"); err != nil {
		slog.Warn("bt-bluez: load AF_ALG crypto", "err", err)
	}
	before := controllers()
	virt := exec.CommandContext(ctx, *btvirt, "-l2")
	virt.Stdout, virt.Stderr = os.Stdout, os.Stderr
	if err := virt.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "bt-bluez: start btvirt: %v\n", err)
		return 1
	}
	exited := make(chan error, 1)
	go func() { exited <- virt.Wait() }()
	added, err := waitControllers(ctx, before, 2, exited)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bt-bluez: %v\n", err)
		return 1
	}
	// The probe takes the first index READ_INDEX_LIST gives, and the kernel lists the
	// controller registered last first: that one is the device's, the other the peer.
	peer, dut := added[0], added[1]
	for _, c := range [][]string{{"le", "on"}, {"bredr", "on"}, {"connectable", "on"}, {"name", *name}, {"power", "on"}, {"discov", "yes"}, {"advertising", "on"}} {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		out, err := exec.CommandContext(cctx, *btmgmt, append([]string{"--index", strconv.Itoa(peer)}, c...)...).CombinedOutput()
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bt-bluez: btmgmt --index %d %s: %v\n%s", peer, strings.Join(c, " "), err, out)
			return 1
		}
	}
	// btmgmt's info prints nothing when its output is not a terminal; the kernel has the
	// address (HCIGETDEVINFO), and sysfs has none for hci devices.
	addr, err := hciAddress(peer)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bt-bluez: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(filepath.Dir(*addrFile), 0o755); err == nil {
		_ = os.WriteFile(*addrFile, []byte(addr+"\n"), 0o644)
	}
	fmt.Printf("bt-bluez: btvirt controllers hci%d (the device's) and hci%d (peer %s, %q, discoverable, advertising)\n", dut, peer, addr, *name)
	markReady(*ready)
	select {
	case err := <-exited:
		if ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "bt-bluez: btvirt exited: %v\n", err)
			return 1
		}
	case <-ctx.Done():
		<-exited
	}
	return 0
}

// hciGetDevInfo is HCIGETDEVINFO, _IOR('H', 211, int).
const hciGetDevInfo = 0x800448d3

// hciAddress reads controller index's address with HCIGETDEVINFO on a raw HCI socket.
func hciAddress(index int) (string, error) {
	fd, err := unix.Socket(unix.AF_BLUETOOTH, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.BTPROTO_HCI)
	if err != nil {
		return "", fmt.Errorf("HCI socket: %w", err)
	}
	defer unix.Close(fd)
	// struct hci_dev_info is 92 bytes on Linux; the kernel writes all of it.
	buf := make([]byte, 128)
	binary.LittleEndian.PutUint16(buf, uint16(index))
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), hciGetDevInfo, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return "", fmt.Errorf("HCIGETDEVINFO hci%d: %w", index, e)
	}
	return devInfoAddr(buf)
}

// devInfoAddr reads bdaddr of struct hci_dev_info: after dev_id (2 bytes) and name
// (8 bytes), 6 bytes least significant first.
func devInfoAddr(b []byte) (string, error) {
	if len(b) < 16 {
		return "", fmt.Errorf("hci_dev_info of %d bytes", len(b))
	}
	a := b[10:16]
	if string(a) == "\x00\x00\x00\x00\x00\x00" {
		return "", errors.New("controller has no address yet")
	}
	return fmt.Sprintf("%02X:%02X:%02X:%02X:%02X:%02X", a[5], a[4], a[3], a[2], a[1], a[0]), nil
}

// controllers lists the hciN indexes in sysfs.
func controllers() map[int]bool {
	out := map[int]bool{}
	ents, _ := os.ReadDir("/sys/class/bluetooth")
	for _, e := range ents {
		if n, ok := hciIndex(e.Name()); ok {
			out[n] = true
		}
	}
	return out
}

// hciIndex parses a controller's sysfs name (hci0); connections (hci0:12) are not one.
func hciIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "hci")
	if !ok || strings.Contains(s, ":") {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// waitControllers waits until n controllers not in before exist and returns them in order.
func waitControllers(ctx context.Context, before map[int]bool, n int, exited <-chan error) ([]int, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var added []int
		for i := range controllers() {
			if !before[i] {
				added = append(added, i)
			}
		}
		sort.Ints(added)
		if len(added) >= n {
			return added[:n], nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("btvirt created %d controllers in 20 s, want %d (is /dev/vhci there?)", len(added), n)
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("btvirt exited: %v", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
