package inventory

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/flashline/flashline/protocol"
)

// TestInventoryModemControl: a Sierra EM7455 in an MBIM composition (no AT port) is still
// the lte module, named by its MBIM node and saying that it is driven over MBIM.
func TestInventoryModemControl(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, "sys/devices/pci0000:00/0000:00:14.0/usb1/1-4")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	write(dev+"/idVendor", "1199")
	write(dev+"/idProduct", "9079")
	link(filepath.Join(root, "sys/bus/usb/devices/1-4"), dev)
	for _, in := range []struct{ n, drv, child string }{{"0", "qcserial", "ttyUSB0"}, {"2", "qcserial", "ttyUSB1"}, {"c", "cdc_mbim", "usbmisc/cdc-wdm0"}, {"d", "cdc_mbim", ""}} {
		d := dev + "/1-4:1." + in.n
		write(d+"/bInterfaceNumber", "0"+in.n)
		link(d+"/driver", filepath.Join(root, "sys/bus/usb/drivers", in.drv))
		if in.child != "" {
			if err := os.MkdirAll(filepath.Join(d, in.child), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	inv, err := Reader{Root: root}.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Radio{Kind: "lte", Name: "cdc-wdm0", Driver: "cdc_mbim", Control: "mbim"}
	if len(inv.Radios) != 1 || inv.Radios[0] != want {
		t.Fatalf("radios %+v, want %+v", inv.Radios, want)
	}
	if len(inv.Modules) != 1 || inv.Modules[0] != "lte" {
		t.Errorf("modules %v", inv.Modules)
	}
}
