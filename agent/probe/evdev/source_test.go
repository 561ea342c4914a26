package evdev

import (
	"os"
	"path/filepath"
	"testing"
)

// TestListSource reads where each device sits from a tree laid out as the kernel does:
// the input device under its parent, eventN/device pointing back at it, class/input/eventN
// a symlink.
func TestListSource(t *testing.T) {
	sys := t.TempDir()
	devices := []struct {
		node, dir, name, phys, bus string
		builtin                    bool
		where                      string
	}{
		{"event0", "devices/LNXSYSTM:00/LNXPWRBN:00/input/input0", "Power Button", "LNXPWRBN/button/input0", "0019", true, "host"},
		{"event1", "devices/platform/gpio-keys/input/input1", "gpio-keys", "gpio-keys/input0", "0019", true, "host"},
		{"event2", "devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/0003:046D:C31C.0001/input/input2", "Logitech USB Keyboard", "usb-0000:00:14.0-3/input0", "0003", false, "usb"},
		{"event3", "devices/pci0000:00/0000:00:05.0/virtio1/input/input3", "QEMU Virtio Keyboard", "virtio1/input0", "0006", false, "virtual"},
		{"event4", "devices/virtual/input/input4", "flashline-uinput", "", "0006", false, "virtual"},
		// Without a bus type (a driver that leaves it 0): the path decides.
		{"event5", "devices/platform/gpio-keys.1.auto/input/input5", "gpio-keys", "", "", true, "host"},
		{"event6", "devices/pci0000:00/0000:00:14.0/usb1/1-4/1-4:1.0/input/input6", "USB Power Key", "", "", false, "unknown"},
	}
	for _, d := range devices {
		dir := filepath.Join(sys, d.dir)
		os.MkdirAll(filepath.Join(dir, "capabilities"), 0o755)
		os.WriteFile(filepath.Join(dir, "capabilities", "key"), []byte("10000000000000 0\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "name"), []byte(d.name+"\n"), 0o644)
		if d.phys != "" {
			os.WriteFile(filepath.Join(dir, "phys"), []byte(d.phys+"\n"), 0o644)
		}
		if d.bus != "" {
			os.MkdirAll(filepath.Join(dir, "id"), 0o755)
			os.WriteFile(filepath.Join(dir, "id", "bustype"), []byte(d.bus+"\n"), 0o644)
		}
		os.MkdirAll(filepath.Join(dir, d.node), 0o755)
		if err := os.Symlink("..", filepath.Join(dir, d.node, "device")); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(sys, "class", "input"), 0o755)
		if err := os.Symlink(filepath.Join(dir, d.node), filepath.Join(sys, "class", "input", d.node)); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := List(sys, "/dev")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(devices) {
		t.Fatalf("List = %d devices, want %d", len(infos), len(devices))
	}
	for i, d := range devices {
		in := infos[i]
		if in.Name != d.name || in.Builtin() != d.builtin || in.Where() != d.where || in.Phys != d.phys || !in.Keys.Has(116) {
			t.Errorf("%s: name %q builtin %v where %q phys %q; want %q %v %q %q", d.node, in.Name, in.Builtin(), in.Where(), in.Phys, d.name, d.builtin, d.where, d.phys)
		}
	}
}
