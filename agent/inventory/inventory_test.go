package inventory

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/flashline/flashline/protocol"
)

func TestGMBoxTree(t *testing.T) {
	inv, err := Reader{Root: "testdata/gmbox"}.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Inventory{
		DMI:         protocol.DMI{Vendor: "GM Industrial", Product: "GM-Box 3 LTE", Version: "B2", Serial: "GMB3-000123", UUID: "4c4c4544-0042-3510-8052-b2c04f4e3732"},
		CPU:         protocol.CPU{Model: "Intel(R) Atom(TM) x6425E Processor @ 2.00GHz", Cores: 4},
		MemoryBytes: 7952340 * 1024,
		Disks: []protocol.Disk{
			{Name: "mmcblk0", Path: "/dev/mmcblk0", Model: "DG4016", Serial: "0x1234abcd", SizeBytes: 30777344 * 512, Transport: "mmc"},
			{Name: "nvme0n1", Path: "/dev/nvme0n1", Model: "Samsung SSD 980 500GB", Serial: "S64DNX0R123456", SizeBytes: 976773168 * 512, Transport: "nvme"},
			{Name: "sda", Path: "/dev/sda", Model: "Cruzer Blade", Serial: "CB123456", SizeBytes: 31266816 * 512, Transport: "usb", Removable: true},
			{Name: "vda", Path: "/dev/vda", Serial: "FLASHLINE-TARGET", SizeBytes: 4194304 * 512, Transport: "virtio"},
		},
		NICs: []protocol.NIC{
			{Name: "enp2s0", MAC: "00:30:18:aa:bb:cc", Driver: "igc", Carrier: true, SpeedMbps: 1000},
			{Name: "wlan0", MAC: "8c:b8:7e:11:22:33", Driver: "iwlwifi", Wireless: true},
		},
		USB: []protocol.USBDevice{
			{VID: "2c7c", PID: "0125", Manufacturer: "Quectel", Product: "EC25-E", Path: "1-1"},
			{VID: "0781", PID: "5567", Product: "Cruzer Blade", Serial: "4C530001", Path: "1-2"},
		},
		Radios: []protocol.Radio{
			{Kind: "wifi", Name: "phy0", Address: "8c:b8:7e:11:22:33", Driver: "iwlwifi"},
			{Kind: "bluetooth", Name: "hci0", Driver: "btusb"},
			{Kind: "lte", Name: "ttyUSB2", Driver: "option", Control: "at"},
		},
		Inputs: []protocol.InputDevice{
			{Name: "Power Button", Path: "/dev/input/event0", Keys: []string{"KEY_POWER"}, Bus: "host"},
			{Name: "gpio-keys", Path: "/dev/input/event1", Keys: []string{"KEY_PROG1"}, Bus: "host"},
		},
		Modules: []string{"bluetooth", "buttons", "lte", "wifi"},
	}
	if !reflect.DeepEqual(inv, want) {
		got, _ := json.MarshalIndent(inv, "", "  ")
		exp, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("inventory:\n%s\nwant:\n%s", got, exp)
	}
}

func TestEmptyTree(t *testing.T) {
	inv, err := Reader{Root: t.TempDir()}.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inv, protocol.Inventory{}) {
		t.Errorf("empty tree gave %+v", inv)
	}
}

// TestSMBIOSTables reads DMI identity and memory from the binary SMBIOS tables when the
// sysfs id files are missing (u-root's test tables of a ThinkPad T490).
func TestSMBIOSTables(t *testing.T) {
	inv, err := Reader{Root: "testdata/smbios"}.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.DMI{Vendor: "LENOVO", Product: "20N2CTO1WW", Version: "ThinkPad T490", Serial: "PF1NKFHN", UUID: "0677d5cc-25b1-11b2-a85c-c66e0b64b3d5", Board: "20N2CTO1WW"}
	if inv.DMI != want {
		t.Errorf("DMI = %+v, want %+v", inv.DMI, want)
	}
	if inv.MemoryBytes != 40<<30 {
		t.Errorf("memory = %d, want 40 GiB from two memory devices", inv.MemoryBytes)
	}
}

func TestCleanDMI(t *testing.T) {
	for in, want := range map[string]string{"To be filled by O.E.M.": "", " GM-Box 3 ": "GM-Box 3", "Default string": "", "Not Specified": ""} {
		if got := cleanDMI(in); got != want {
			t.Errorf("cleanDMI(%q) = %q", in, got)
		}
	}
}

func TestModules(t *testing.T) {
	inv := protocol.Inventory{Radios: []protocol.Radio{{Kind: "wifi"}, {Kind: "wifi"}}, Inputs: []protocol.InputDevice{{Name: "kbd"}}}
	if got := Modules(inv); !reflect.DeepEqual(got, []string{"wifi"}) {
		t.Errorf("Modules = %v", got)
	}
}

// FuzzProcFiles feeds arbitrary cpuinfo, meminfo and VPD page contents to the readers.
func FuzzProcFiles(f *testing.F) {
	f.Add([]byte("processor\t: 0\nmodel name\t: X\n"), []byte("MemTotal: 1024 kB\n"), []byte("\x00\x80\x00\x04ABCD"))
	f.Add([]byte(""), []byte("MemTotal:"), []byte("\x00\x80\x00\xffA"))
	f.Fuzz(func(t *testing.T, cpuinfo, meminfo, vpd []byte) {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "proc"), 0o755)
		os.WriteFile(filepath.Join(root, "proc", "cpuinfo"), cpuinfo, 0o644)
		os.WriteFile(filepath.Join(root, "proc", "meminfo"), meminfo, 0o644)
		p := filepath.Join(root, "vpd")
		os.WriteFile(p, vpd, 0o644)
		r := Reader{Root: root}
		if c := r.cpu(); c.Cores < 0 {
			t.Fatal("negative cores")
		}
		r.memory(nil)
		vpdSerial(p)
	})
}
