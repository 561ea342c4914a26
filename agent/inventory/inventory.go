// Package inventory reads a device's hardware inventory from sysfs, procfs and the SMBIOS
// tables: DMI identity, CPU, RAM, disks, NICs, USB devices, radios and input devices. Every
// path is taken under a root directory, so tests read fake trees from testdata.
package inventory

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/flashline/flashline/agent/probe/evdev"
	"github.com/flashline/flashline/agent/probe/lte"
	"github.com/flashline/flashline/protocol"
	"github.com/u-root/u-root/pkg/smbios"
)

// Module names, as scenarios and job rules match them.
const (
	ModuleWiFi      = "wifi"
	ModuleBluetooth = "bluetooth"
	ModuleLTE       = "lte"
	ModuleButtons   = "buttons"
)

// Reader reads the inventory of the system under Root.
type Reader struct {
	// Root is the root of the tree holding sys/, proc/ and dev/ ("/" on a device).
	Root string
	// Log receives problems that leave a part of the inventory empty; nil discards them.
	Log *slog.Logger
}

func (r Reader) path(p ...string) string {
	root := r.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(append([]string{root}, p...)...)
}

func (r Reader) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Inventory reads everything. A part that cannot be read is left empty (and logged): a
// device without DMI must still be testable.
func (r Reader) Inventory(ctx context.Context) (protocol.Inventory, error) {
	var inv protocol.Inventory
	var smb *smbios.Info
	if entry, err := os.ReadFile(r.path("sys/firmware/dmi/tables/smbios_entry_point")); err == nil {
		if table, err := os.ReadFile(r.path("sys/firmware/dmi/tables/DMI")); err == nil {
			if smb, err = smbios.ParseInfo(entry, table); err != nil {
				r.log().Warn("inventory: SMBIOS tables do not parse", "err", err)
				smb = nil
			}
		}
	}
	inv.DMI = r.dmi(smb)
	inv.CPU = r.cpu()
	inv.MemoryBytes = r.memory(smb)
	if err := ctx.Err(); err != nil {
		return inv, err
	}
	inv.Disks = r.disks()
	inv.NICs = r.nics()
	inv.USB = r.usb()
	inv.Radios = r.radios()
	inv.Inputs = r.inputs()
	inv.Modules = Modules(inv)
	return inv, ctx.Err()
}

// Modules derives the optional modules present from the rest of the inventory.
func Modules(inv protocol.Inventory) []string {
	var mods []string
	add := func(m string) {
		if !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	for _, r := range inv.Radios {
		switch r.Kind {
		case ModuleWiFi, ModuleBluetooth, ModuleLTE:
			add(r.Kind)
		}
	}
	for _, in := range inv.Inputs {
		if len(in.Keys) > 0 {
			add(ModuleButtons)
		}
	}
	sort.Strings(mods)
	return mods
}

func (r Reader) read(p ...string) string {
	b, err := os.ReadFile(r.path(p...))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// dmi reads /sys/class/dmi/id, filling gaps from the SMBIOS tables.
func (r Reader) dmi(smb *smbios.Info) protocol.DMI {
	id := func(f string) string { return cleanDMI(r.read("sys/class/dmi/id", f)) }
	d := protocol.DMI{
		Vendor: id("sys_vendor"), Product: id("product_name"), Version: id("product_version"),
		Serial: id("product_serial"), UUID: id("product_uuid"), Board: id("board_name"),
	}
	if smb != nil {
		if si, err := smb.GetSystemInfo(); err == nil {
			fill(&d.Vendor, si.Manufacturer)
			fill(&d.Product, si.ProductName)
			fill(&d.Version, si.Version)
			fill(&d.Serial, si.SerialNumber)
			if d.UUID == "" {
				d.UUID = cleanDMI(si.UUID.String())
			}
		}
		if bb, err := smb.GetBaseboardInfo(); err == nil && len(bb) > 0 {
			fill(&d.Board, bb[0].Product)
		}
	}
	return d
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = cleanDMI(v)
	}
}

// cleanDMI drops the placeholders firmware writes into empty DMI fields.
func cleanDMI(s string) string {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "to be filled by o.e.m.", "default string", "not specified", "not settable", "not present", "none", "n/a", "system serial number", "0", "00000000-0000-0000-0000-000000000000", "03000200-0400-0500-0006-000700080009":
		return ""
	}
	return s
}

// cpu reads /proc/cpuinfo: the model of the first processor and the count of logical CPUs.
func (r Reader) cpu() protocol.CPU {
	f, err := os.Open(r.path("proc/cpuinfo"))
	if err != nil {
		r.log().Warn("inventory: no cpuinfo", "err", err)
		return protocol.CPU{}
	}
	defer f.Close()
	var c protocol.CPU
	var fallback string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			if _, err := strconv.Atoi(v); err == nil {
				c.Cores++
			}
		case "model name":
			if c.Model == "" {
				c.Model = v
			}
		case "Hardware", "Model", "cpu model", "uarch":
			// ARM and RISC-V name the SoC or board instead.
			if fallback == "" {
				fallback = v
			}
		}
	}
	if c.Model == "" {
		c.Model = fallback
	}
	return c
}

// memory is the RAM installed according to SMBIOS, or the kernel's MemTotal (a little less:
// firmware and kernel reservations) when the tables list no memory devices.
func (r Reader) memory(smb *smbios.Info) uint64 {
	if smb != nil {
		if devs, err := smb.GetMemoryDevices(); err == nil {
			var total uint64
			for _, d := range devs {
				total += d.GetSizeBytes()
			}
			if total > 0 {
				return total
			}
		}
	}
	f, err := os.Open(r.path("proc/meminfo"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// disks lists whole block devices that sit on hardware (loop, ram, zram, dm and md devices
// have no device link; eMMC boot and RPMB partitions are left out).
func (r Reader) disks() []protocol.Disk {
	dir := r.path("sys/block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []protocol.Disk
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "mmcblk") && (strings.Contains(name, "boot") || strings.Contains(name, "rpmb")) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, name, "device")); err != nil {
			continue
		}
		real, _ := filepath.EvalSymlinks(filepath.Join(dir, name))
		sectors, _ := strconv.ParseInt(r.read("sys/block", name, "size"), 10, 64)
		d := protocol.Disk{
			Name: name, Path: "/dev/" + name,
			Model:     r.read("sys/block", name, "device", "model"),
			Serial:    r.read("sys/block", name, "device", "serial"),
			SizeBytes: sectors * 512, // sysfs counts 512-byte sectors whatever the block size
			Removable: r.read("sys/block", name, "removable") == "1",
			ReadOnly:  r.read("sys/block", name, "ro") == "1",
			Transport: transport(name, real),
		}
		if d.Model == "" {
			d.Model = r.read("sys/block", name, "device", "name") // mmc
		}
		if d.Serial == "" {
			d.Serial = r.read("sys/block", name, "serial") // virtio_blk
		}
		if d.Serial == "" {
			d.Serial = vpdSerial(r.path("sys/block", name, "device", "vpd_pg80")) // SCSI/SATA
		}
		out = append(out, d)
	}
	return out
}

func transport(name, devPath string) string {
	switch {
	case strings.HasPrefix(name, "nvme"):
		return "nvme"
	case strings.HasPrefix(name, "mmcblk"):
		return "mmc"
	case strings.Contains(devPath, "/usb"):
		return "usb"
	case strings.Contains(devPath, "/virtio"), strings.HasPrefix(name, "vd"):
		return "virtio"
	case strings.Contains(devPath, "/ata"):
		return "sata"
	case strings.HasPrefix(name, "sd"):
		return "scsi"
	}
	return ""
}

// vpdSerial reads the unit serial number from a SCSI VPD page 0x80: a 4-byte header whose
// last byte is the length, then the serial.
func vpdSerial(p string) string {
	b, err := os.ReadFile(p)
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[3])
	if 4+n > len(b) {
		n = len(b) - 4
	}
	return strings.TrimSpace(string(b[4 : 4+n]))
}

// nics lists network interfaces that sit on hardware.
func (r Reader) nics() []protocol.NIC {
	dir := r.path("sys/class/net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []protocol.NIC
	for _, e := range ents {
		base := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(base, "device")); err != nil {
			continue
		}
		n := protocol.NIC{Name: e.Name(), MAC: r.read("sys/class/net", e.Name(), "address")}
		if drv, err := filepath.EvalSymlinks(filepath.Join(base, "device", "driver")); err == nil {
			n.Driver = filepath.Base(drv)
		}
		n.Wireless = exists(filepath.Join(base, "wireless")) || exists(filepath.Join(base, "phy80211"))
		n.Carrier = r.read("sys/class/net", e.Name(), "carrier") == "1"
		if n.Carrier {
			if s, err := strconv.Atoi(r.read("sys/class/net", e.Name(), "speed")); err == nil && s > 0 {
				n.SpeedMbps = s
			}
		}
		out = append(out, n)
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// usb lists USB devices (not interfaces), root hubs left out.
func (r Reader) usb() []protocol.USBDevice {
	dir := r.path("sys/bus/usb/devices")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []protocol.USBDevice
	for _, e := range ents {
		vid := r.read("sys/bus/usb/devices", e.Name(), "idVendor")
		if vid == "" || vid == "1d6b" { // 1d6b: the Linux Foundation's root hubs
			continue
		}
		out = append(out, protocol.USBDevice{
			VID: vid, PID: r.read("sys/bus/usb/devices", e.Name(), "idProduct"),
			Manufacturer: r.read("sys/bus/usb/devices", e.Name(), "manufacturer"),
			Product:      r.read("sys/bus/usb/devices", e.Name(), "product"),
			Serial:       r.read("sys/bus/usb/devices", e.Name(), "serial"),
			Path:         e.Name(),
		})
	}
	return out
}

// radios lists Wi-Fi PHYs, Bluetooth controllers and LTE modems (by their AT port, or a
// QMI/MBIM network interface).
func (r Reader) radios() []protocol.Radio {
	var out []protocol.Radio
	driver := func(p string) string {
		if d, err := filepath.EvalSymlinks(filepath.Join(p, "device", "driver")); err == nil {
			return filepath.Base(d)
		}
		return ""
	}
	if ents, err := os.ReadDir(r.path("sys/class/ieee80211")); err == nil {
		for _, e := range ents {
			p := r.path("sys/class/ieee80211", e.Name())
			out = append(out, protocol.Radio{Kind: ModuleWiFi, Name: e.Name(), Address: r.read("sys/class/ieee80211", e.Name(), "macaddress"), Driver: driver(p)})
		}
	}
	if ents, err := os.ReadDir(r.path("sys/class/bluetooth")); err == nil {
		for _, e := range ents {
			// hci0:1 style entries are connections, not controllers.
			if !strings.HasPrefix(e.Name(), "hci") || strings.Contains(e.Name(), ":") {
				continue
			}
			p := r.path("sys/class/bluetooth", e.Name())
			out = append(out, protocol.Radio{Kind: ModuleBluetooth, Name: e.Name(), Address: r.read("sys/class/bluetooth", e.Name(), "address"), Driver: driver(p)})
		}
	}
	if m := r.modemRadio(); m != nil {
		return append(out, *m)
	}
	ports, _ := lte.FindPorts(r.path("sys"), "/dev")
	for _, p := range ports {
		// Only a modem driver's port counts: a generic USB-serial adapter is not a modem.
		if p.Rank >= 2 {
			out = append(out, protocol.Radio{Kind: ModuleLTE, Name: p.Name, Driver: p.Driver})
			break
		}
	}
	for _, n := range r.nics() {
		if n.Driver == "qmi_wwan" || n.Driver == "cdc_mbim" || strings.HasPrefix(n.Name, "wwan") {
			if !slices.ContainsFunc(out, func(x protocol.Radio) bool { return x.Kind == ModuleLTE }) {
				out = append(out, protocol.Radio{Kind: ModuleLTE, Name: n.Name, Driver: n.Driver})
			}
		}
	}
	return out
}

// notableKeys are the keys listed for input devices: buttons a scenario may test. Full
// keyboards would otherwise list a hundred keys.
func notableKeys() []string {
	return []string{"KEY_POWER", "KEY_RESTART", "KEY_SLEEP", "KEY_WAKEUP", "KEY_VOLUMEUP", "KEY_VOLUMEDOWN",
		"KEY_PROG1", "KEY_PROG2", "KEY_PROG3", "KEY_PROG4", "KEY_VENDOR", "KEY_CONFIG", "KEY_SETUP", "BTN_0", "BTN_1", "BTN_2", "BTN_3"}
}

// inputs lists event devices with the notable keys each can send.
func (r Reader) inputs() []protocol.InputDevice {
	infos, err := evdev.List(r.path("sys"), "/dev")
	if err != nil {
		return nil
	}
	var out []protocol.InputDevice
	for _, in := range infos {
		d := protocol.InputDevice{Name: in.Name, Path: in.Path, Bus: in.Where()}
		for _, k := range notableKeys() {
			if c, ok := evdev.KeyCode(k); ok && in.Keys.Has(c) {
				d.Keys = append(d.Keys, k)
			}
		}
		out = append(out, d)
	}
	return out
}
