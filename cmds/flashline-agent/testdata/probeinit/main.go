// Command probeinit is the /init of the QEMU probe test (probes_e2e_test.go): it mounts the
// kernel filesystems, loads the modules listed in /mods/order, waits for USB to settle, then
// runs flashline-agent inventory and scenario run and powers the guest off. It uses only the
// standard library so that it stays a few MiB.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	for _, m := range []struct{ src, dst, typ string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		os.MkdirAll(m.dst, 0o755)
		if err := syscall.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			fmt.Println("PROBEINIT mount", m.dst, err)
		}
	}
	order, _ := os.ReadFile("/mods/order")
	for _, m := range strings.Fields(string(order)) {
		if err := load(filepath.Join("/mods", m)); err != nil {
			fmt.Println("PROBEINIT load", m, err)
		}
	}
	// USB enumeration and the serial driver's binding take a moment after the host
	// controller's module loads.
	for i := 0; i < 50; i++ {
		if _, err := os.Stat("/dev/ttyUSB0"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	run("/bin/flashline-agent", "inventory")
	run("/bin/flashline-agent", "scenario", "run", "--force", "--color", "never", "--json", "/results.json", "/scenario.yaml")
	if b, err := os.ReadFile("/results.json"); err == nil {
		fmt.Printf("PROBEINIT results %s\n", strings.Join(strings.Fields(string(b)), " "))
	}
	fmt.Println("PROBEINIT done")
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}

func load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	empty, _ := syscall.BytePtrFromString("")
	_, _, e := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(empty)), 0)
	if e != 0 && e != syscall.EEXIST {
		return e
	}
	return nil
}

func run(args ...string) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	err := cmd.Run()
	fmt.Printf("PROBEINIT %s exited: %v\n", args[1], err)
}

// sysFinitModule is finit_module(2) on amd64, the only architecture the QEMU tests run.
const sysFinitModule = 313
