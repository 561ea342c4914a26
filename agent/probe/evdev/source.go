package evdev

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Bus types of struct input_id (linux/input.h) that tell where a key comes from.
const (
	BusPCI       = 0x01
	BusUSB       = 0x03
	BusBluetooth = 0x05
	BusVirtual   = 0x06
	BusI8042     = 0x11
	BusHost      = 0x19 // the machine's own: ACPI buttons, gpio-keys, soc_button_array, intel-hid
)

// BusName names a bus type: "usb", "bluetooth", "virtual", "i8042", "host" or the number.
func BusName(bus uint16) string {
	switch bus {
	case BusPCI:
		return "pci"
	case BusUSB:
		return "usb"
	case BusBluetooth:
		return "bluetooth"
	case BusVirtual:
		return "virtual"
	case BusI8042:
		return "i8042"
	case BusHost:
		return "host"
	case 0:
		return "unknown"
	}
	return "bus 0x" + strconv.FormatUint(uint64(bus), 16)
}

// readSource fills the fields that say where the device sits: the bus type (id/bustype),
// phys, and the device's sysfs path. dev is /sys/class/input/eventN/device.
func readSource(dev string, in *Info) {
	if b, err := os.ReadFile(filepath.Join(dev, "id", "bustype")); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 16); err == nil {
			in.Bus = uint16(n)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dev, "phys")); err == nil {
		in.Phys = strings.TrimSpace(string(b))
	}
	if p, err := filepath.EvalSymlinks(dev); err == nil {
		in.SysPath = p
	}
}

// Builtin reports whether the device is the machine's own button rather than something
// plugged in: on the host bus (the ACPI power and sleep buttons, gpio-keys, soc_button_array,
// intel-hid / intel-vbtn all register there) and not under a USB port. When the bus type is
// not readable, the ACPI and gpio-keys names in phys or the sysfs path decide.
func (i Info) Builtin() bool {
	where := strings.ToLower(i.Phys + " " + i.SysPath)
	if strings.Contains(where, "/usb") || strings.HasPrefix(i.Phys, "usb-") {
		return false
	}
	if i.Bus != 0 {
		return i.Bus == BusHost
	}
	for _, s := range []string{"gpio-keys", "gpio_keys", "lnxpwrbn", "lnxslpbn", "pnp0c0c", "pnp0c0e", "soc_button_array", "intel-hid", "intel-vbtn"} {
		if strings.Contains(where, s) {
			return true
		}
	}
	return false
}

// Where says where the device sits, for messages: "host", "usb", "virtual" ...
func (i Info) Where() string {
	if i.Bus == 0 && i.Builtin() {
		return "host"
	}
	return BusName(i.Bus)
}
