package lte

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/testbed/atmodem"
)

// fakeSys builds a sysfs tree the way the kernel lays it out: devices under devices/, the
// bus and class directories as symlinks into it.
type fakeSys struct {
	t    *testing.T
	root string // holds sys/
}

func newFakeSys(t *testing.T) fakeSys {
	t.Helper()
	return fakeSys{t: t, root: t.TempDir()}
}

func (f fakeSys) sys() string { return filepath.Join(f.root, "sys") }

func (f fakeSys) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.sys(), rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f fakeSys) mkdir(rel string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Join(f.sys(), rel), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

// link makes sys/rel a symlink to sys/target.
func (f fakeSys) link(rel, target string) {
	f.t.Helper()
	p := filepath.Join(f.sys(), rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	f.mkdir(target)
	if err := os.Symlink(filepath.Join(f.sys(), target), p); err != nil {
		f.t.Fatal(err)
	}
}

// iface is one USB interface of a fake device.
type iface struct {
	num    int
	driver string
	prot   string   // bInterfaceProtocol, "00" when empty
	ttys   []string // usb-serial ports (ttyUSB*) or, for cdc_acm, ttyACM*
	nets   []string
	misc   []string
}

// usb adds a USB device at bus port busPort (1-1) with its interfaces.
func (f fakeSys) usb(busPort, vid, pid string, ifs ...iface) {
	dev := "devices/pci0000:00/0000:00:14.0/usb1/" + busPort
	f.write(dev+"/idVendor", vid)
	f.write(dev+"/idProduct", pid)
	f.link("bus/usb/devices/"+busPort, dev)
	for _, in := range ifs {
		name := fmt.Sprintf("%s:1.%d", busPort, in.num)
		d := dev + "/" + name
		f.write(d+"/bInterfaceNumber", fmt.Sprintf("%02x", in.num))
		prot := in.prot
		if prot == "" {
			prot = "00"
		}
		f.write(d+"/bInterfaceProtocol", prot)
		f.link(d+"/driver", "bus/usb/drivers/"+in.driver)
		f.link("bus/usb/devices/"+name, d)
		for _, t := range in.ttys {
			if in.driver == "cdc_acm" {
				f.mkdir(d + "/tty/" + t)
				f.link("class/tty/"+t, d+"/tty/"+t)
				f.link("class/tty/"+t+"/device", d)
			} else {
				f.mkdir(d + "/" + t + "/tty/" + t)
				f.link("class/tty/"+t, d+"/"+t+"/tty/"+t)
				f.link("class/tty/"+t+"/device", d+"/"+t)
			}
		}
		for _, n := range in.nets {
			f.mkdir(d + "/net/" + n)
			f.link("class/net/"+n, d+"/net/"+n)
		}
		for _, n := range in.misc {
			f.mkdir(d + "/usbmisc/" + n)
		}
	}
}

// wwan adds a PCIe modem with WWAN ports: name -> type ("AT", "MBIM" ...).
func (f fakeSys) wwan(pci, vendor, device string, ports ...string) {
	dev := "devices/pci0000:00/0000:00:1c.0/" + pci
	f.write(dev+"/vendor", "0x"+vendor)
	f.write(dev+"/device", "0x"+device)
	w := dev + "/wwan/wwan0"
	f.link(w+"/device", dev)
	f.link("class/wwan/wwan0", w)
	for i := 0; i+1 < len(ports); i += 2 {
		f.write(w+"/"+ports[i]+"/type", ports[i+1])
		f.link("class/wwan/"+ports[i], w+"/"+ports[i])
	}
}

func portNames(ps []Port) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Name+"/"+p.Role)
	}
	return strings.Join(s, " ")
}

func serialIfs(driver string, nums ...int) []iface {
	var out []iface
	for i, n := range nums {
		out = append(out, iface{num: n, driver: driver, ttys: []string{fmt.Sprintf("ttyUSB%d", i)}})
	}
	return out
}

// The layouts of the modems GM-Boxes ship with, in their usual USB compositions.
func TestFindModemsLayouts(t *testing.T) {
	qmi := func(n int) iface {
		return iface{num: n, driver: "qmi_wwan", nets: []string{"wwan0"}, misc: []string{"cdc-wdm0"}}
	}
	mbim := func(n int) []iface {
		return []iface{{num: n, driver: "cdc_mbim", nets: []string{"wwan0"}, misc: []string{"cdc-wdm0"}}, {num: n + 1, driver: "cdc_mbim"}}
	}
	tests := []struct {
		name  string
		build func(f fakeSys)
		// want: model, control, controls, AT ports, other ports, nodes
		model, control, controls, at, others, nodes string
	}{
		{
			name:  "Quectel EC25, QMI (qmi_wwan on 4)",
			build: func(f fakeSys) { f.usb("1-1", "2c7c", "0125", append(serialIfs("option", 0, 1, 2, 3), qmi(4))...) },
			model: "Quectel EC25", control: "qmi", controls: "qmi at",
			at: "ttyUSB2/at ttyUSB3/modem", others: "ttyUSB0/dm ttyUSB1/nmea", nodes: "wwan0 /dev/cdc-wdm0",
		},
		{
			name:  "Quectel EC25, MBIM (usbnet 2: cdc_mbim on 4-5)",
			build: func(f fakeSys) { f.usb("1-1", "2c7c", "0125", append(serialIfs("option", 0, 1, 2, 3), mbim(4)...)...) },
			model: "Quectel EC25", control: "mbim", controls: "mbim at",
			at: "ttyUSB2/at ttyUSB3/modem", others: "ttyUSB0/dm ttyUSB1/nmea", nodes: "wwan0 /dev/cdc-wdm0",
		},
		{
			name:  "Quectel EM05-G, MBIM",
			build: func(f fakeSys) { f.usb("2-3", "2c7c", "030a", append(serialIfs("option", 0, 1, 2, 3), mbim(4)...)...) },
			model: "Quectel EM05-G", control: "mbim", controls: "mbim at",
			at: "ttyUSB2/at ttyUSB3/modem", others: "ttyUSB0/dm ttyUSB1/nmea", nodes: "wwan0 /dev/cdc-wdm0",
		},
		{
			name:  "Sierra EM7455, QMI (qcserial 0/2/3, qmi_wwan 8)",
			build: func(f fakeSys) { f.usb("1-4", "1199", "9079", append(serialIfs("qcserial", 0, 2, 3), qmi(8))...) },
			model: "Sierra Wireless EM7455", control: "qmi", controls: "qmi at",
			at: "ttyUSB2/at", others: "ttyUSB0/dm ttyUSB1/nmea", nodes: "wwan0 /dev/cdc-wdm0",
		},
		{
			name:  "Sierra EM7455, MBIM composition without AT",
			build: func(f fakeSys) { f.usb("1-4", "1199", "9079", append(serialIfs("qcserial", 0, 2), mbim(12)...)...) },
			model: "Sierra Wireless EM7455", control: "mbim", controls: "mbim",
			at: "", others: "ttyUSB0/dm ttyUSB1/nmea", nodes: "wwan0 /dev/cdc-wdm0",
		},
		{
			name: "Fibocom L850-GL on USB (cdc_mbim + three cdc_acm)",
			build: func(f fakeSys) {
				ifs := mbim(0)
				for i, n := range []int{2, 4, 6} {
					ifs = append(ifs, iface{num: n, driver: "cdc_acm", ttys: []string{fmt.Sprintf("ttyACM%d", i)}}, iface{num: n + 1, driver: "cdc_acm"})
				}
				f.usb("3-1", "2cb7", "0007", ifs...)
			},
			model: "Fibocom L850-GL", control: "mbim", controls: "mbim at",
			at: "ttyACM0/at ttyACM1/at ttyACM2/", others: "", nodes: "wwan0 /dev/cdc-wdm0",
		},
		{
			name: "Fibocom L850-GL on PCIe (WWAN subsystem)",
			build: func(f fakeSys) {
				f.wwan("0000:01:00.0", "8086", "7360", "wwan0at0", "AT", "wwan0at1", "AT", "wwan0xmmrpc0", "XMMRPC")
			},
			model: "Intel XMM7360 (Fibocom L850-GL)", control: "wwan", controls: "wwan",
			at: "wwan0at0/at wwan0at1/at", others: "wwan0xmmrpc0/xmmrpc", nodes: "",
		},
		{
			name: "PCIe modem with MBIM only",
			build: func(f fakeSys) {
				f.wwan("0000:02:00.0", "17cb", "0308", "wwan0mbim0", "MBIM", "wwan0qcdm0", "QCDM", "wwan0firehose0", "FIREHOSE")
			},
			model: "Qualcomm SDX62/65 (Quectel RM520N)", control: "wwan", controls: "wwan mbim",
			at: "", others: "wwan0firehose0/firehose wwan0qcdm0/dm", nodes: "/dev/wwan0mbim0",
		},
		{
			name: "unknown modem with an ACM port that says it takes AT",
			build: func(f fakeSys) {
				f.usb("1-2", "1546", "1141", iface{num: 0, driver: "cdc_acm", prot: "01", ttys: []string{"ttyACM0"}})
			},
			model: "", control: "at", controls: "at",
			at: "ttyACM0/", others: "", nodes: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSys(t)
			tt.build(f)
			// Not modems: an Arduino (ACM without the AT protocol) and an FTDI adapter.
			f.usb("1-9", "2341", "0043", iface{num: 0, driver: "cdc_acm", ttys: []string{"ttyACM9"}})
			f.usb("1-8", "0403", "6001", iface{num: 0, driver: "ftdi_sio", ttys: []string{"ttyUSB9"}})
			ms, err := FindModems(f.sys(), "/dev")
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != 1 {
				t.Fatalf("found %d modems, want 1: %+v", len(ms), ms)
			}
			m := ms[0]
			got := []string{m.Model, m.Control, strings.Join(m.Controls, " "), portNames(m.ATPorts), portNames(m.Others), strings.Join(m.Nodes, " ")}
			want := []string{tt.model, tt.control, tt.controls, tt.at, tt.others, tt.nodes}
			for i, field := range []string{"model", "control", "controls", "AT ports", "other ports", "nodes"} {
				if got[i] != want[i] {
					t.Errorf("%s = %q, want %q", field, got[i], want[i])
				}
			}
		})
	}
}

// The committed inventory tree (an EC25 whose interfaces are only under the device) is read
// the same way.
func TestFindModemsInventoryTree(t *testing.T) {
	ms, err := FindModems("../../inventory/testdata/gmbox/sys", "/dev")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Model != "Quectel EC25" || ms[0].Control != ControlAT || len(ms[0].ATPorts) == 0 || ms[0].ATPorts[0].Name != "ttyUSB2" {
		t.Fatalf("FindModems = %+v", ms)
	}
}

// TestProbeOnlyATPorts: the DM and NMEA ports of an EC25 are never opened, and the result
// says which modem and control interface the port belongs to.
func TestProbeOnlyATPorts(t *testing.T) {
	f := newFakeSys(t)
	f.usb("1-1", "2c7c", "0125", append(serialIfs("option", 0, 1, 2, 3), iface{num: 4, driver: "qmi_wwan", nets: []string{"wwan0"}, misc: []string{"cdc-wdm0"}})...)
	modem := modemOnPty(t, atmodem.EC25())
	var tried []string
	p := Prober{Sys: f.sys(), Dev: "/dev", SyncTimeout: 300 * time.Millisecond, Open: func(path string) (io.ReadWriteCloser, error) {
		tried = append(tried, path)
		return OpenSerial(modem)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := p.Probe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tried, ",") != "/dev/ttyUSB2" || info.Control != ControlQMI || !strings.Contains(info.Device, "Quectel EC25") || info.Model != "EC25" {
		t.Errorf("tried %v, info %+v", tried, info)
	}
}

// TestProbeWWANPort speaks AT over a WWAN port, opened as a plain character device (the
// default opener; the node is a symlink to a pty that serves the fake modem).
func TestProbeWWANPort(t *testing.T) {
	f := newFakeSys(t)
	f.wwan("0000:01:00.0", "8086", "7360", "wwan0at0", "AT", "wwan0xmmrpc0", "XMMRPC")
	dev := t.TempDir()
	if err := os.Symlink(modemOnPty(t, atmodem.EC25()), filepath.Join(dev, "wwan0at0")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	info, err := Prober{Sys: f.sys(), Dev: dev}.Probe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Port != filepath.Join(dev, "wwan0at0") || info.Control != ControlWWAN || info.IMEI != "867962041234561" || info.SIM != SIMReady {
		t.Errorf("info %+v", info)
	}
}

// TestProbeNoATPort: a modem that is there but offers only MBIM fails with that reason, and
// no port is opened (its DM port would never answer AT).
func TestProbeNoATPort(t *testing.T) {
	f := newFakeSys(t)
	f.usb("1-4", "1199", "9079", append(serialIfs("qcserial", 0, 2), iface{num: 12, driver: "cdc_mbim", nets: []string{"wwan0"}, misc: []string{"cdc-wdm0"}})...)
	opened := false
	p := Prober{Sys: f.sys(), Dev: "/dev", Open: func(string) (io.ReadWriteCloser, error) { opened = true; return nil, os.ErrNotExist }}
	_, err := p.Probe(context.Background(), "")
	var noAT *NoATPortError
	if !errors.As(err, &noAT) {
		t.Fatalf("Probe = %v, want a NoATPortError", err)
	}
	for _, want := range []string{"Sierra Wireless EM7455", "1199:9079", "no AT port", "MBIM", "ttyUSB0 DM", "/dev/cdc-wdm0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if opened || noAT.Modem.Control != ControlMBIM {
		t.Errorf("opened %v, control %q", opened, noAT.Modem.Control)
	}
}
