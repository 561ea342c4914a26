// Command gm-soft-kit is the "device firmware" of Flashline's test firmware image: the init
// (PID 1) of a tiny initramfs that proves a flashed device boots its new firmware. It mounts
// /proc, /sys and /dev, reads the DMI system serial number and prints
//
//	GM-SOFT-KIT BOOTED serial=<serial>
//
// on the console and on the first serial port, then powers off (or idles or reboots, as
// gmsoftkit.after=poweroff|idle|reboot on the kernel command line says).
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if os.Getpid() != 1 {
		// Run by hand on a host: print the marker for this machine and touch nothing else.
		fmt.Println(marker(readSerial("/sys")))
		return
	}
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			log.Error("mkdir", "dir", m.dst, "err", err)
		}
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil && err != unix.EBUSY {
			log.Error("mount", "dir", m.dst, "err", err)
		}
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	line := marker(readSerial("/sys")) + "\n"
	for _, w := range outputs(string(cmdline)) {
		f, err := os.OpenFile(w, os.O_WRONLY|unix.O_NOCTTY, 0)
		if err != nil {
			continue
		}
		io.WriteString(f, line)
		f.Close()
	}
	after := param(string(cmdline), "gmsoftkit.after", "poweroff")
	unix.Sync()
	// Let the UART drain before the machine goes away.
	time.Sleep(200 * time.Millisecond)
	switch after {
	case "idle":
		for {
			time.Sleep(time.Hour)
		}
	case "reboot":
		unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	default:
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	// PID 1 must never exit: the kernel would panic.
	for {
		time.Sleep(time.Hour)
	}
}

// marker is the line test harnesses wait for.
func marker(serial string) string {
	return "GM-SOFT-KIT BOOTED serial=" + serial
}

// readSerial returns the DMI system serial number, "unknown" when there is none.
func readSerial(sysfs string) string {
	b, err := os.ReadFile(sysfs + "/class/dmi/id/product_serial")
	if err != nil {
		return "unknown"
	}
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == ' ' {
			return '_'
		}
		return r
	}, strings.TrimSpace(string(b)))
	if s == "" {
		return "unknown"
	}
	return s
}

// outputs lists where the marker goes: the console, and ttyS0 as well unless the console
// already is ttyS0 (so that a serial log sees the line exactly once whatever the loader's
// command line says).
func outputs(cmdline string) []string {
	out := []string{"/dev/console"}
	for _, f := range strings.Fields(cmdline) {
		if strings.HasPrefix(f, "console=ttyS0") {
			return out
		}
	}
	return append(out, "/dev/ttyS0")
}

// param returns the value of key=value on the kernel command line, or def.
func param(cmdline, key, def string) string {
	v := def
	for _, f := range strings.Fields(cmdline) {
		if k, val, ok := strings.Cut(f, "="); ok && k == key {
			v = val
		}
	}
	return v
}
