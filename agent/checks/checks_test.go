package checks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/probe/evdev"
	"github.com/flashline/flashline/agent/probe/lte"
	"github.com/flashline/flashline/protocol"
)

var gmbox = protocol.Inventory{
	DMI:         protocol.DMI{Vendor: "GM", Product: "GM-Box 3", Serial: "GMB3-0001"},
	CPU:         protocol.CPU{Model: "Intel(R) Atom(TM) x6425E Processor @ 2.00GHz", Cores: 4},
	MemoryBytes: 8 << 30,
	Disks: []protocol.Disk{
		{Name: "mmcblk0", Model: "DG4016", SizeBytes: 15_758_000_128, Transport: "mmc"},
		{Name: "nvme0n1", Model: "Samsung SSD 980 500GB", SizeBytes: 500_107_862_016, Transport: "nvme"},
	},
	USB: []protocol.USBDevice{{VID: "2c7c", PID: "0125", Product: "EC25-E", Path: "1-1"}},
}

// run builds kind's check from params (validating them first) and runs it once.
func run(t *testing.T, k Kind, params any, env *Env) (Outcome, error) {
	t.Helper()
	p := k.NewParams()
	// Copy the test's params over the defaults.
	reflect.ValueOf(p).Elem().Set(reflect.ValueOf(params))
	if fe := k.Validate(p); len(fe) > 0 {
		t.Fatalf("params %+v invalid: %v", params, fe)
	}
	c, err := k.New(p)
	if err != nil {
		t.Fatal(err)
	}
	if env == nil {
		env = &Env{Inventory: StaticInventory(gmbox), Operator: NopOperator{}}
	}
	return c.Run(context.Background(), env)
}

func measurement(o Outcome, name string) (protocol.Measurement, bool) {
	for _, m := range o.Measurements {
		if m.Name == name {
			return m, true
		}
	}
	return protocol.Measurement{}, false
}

func TestInventoryKinds(t *testing.T) {
	tests := []struct {
		name   string
		kind   Kind
		params any
		pass   bool
		reason string
		meas   string
	}{
		{"emmc 16GB fails at 15.7GB", DiskPresent(), DiskPresentParams{MinSize: 16e9, Transport: "mmc", Count: 1}, false, "found 0", "disks_matching"},
		{"emmc 14GiB passes", DiskPresent(), DiskPresentParams{MinSize: 14 << 30, Transport: "mmc", Count: 1}, true, "mmcblk0", "size_bytes"},
		{"nvme by model", DiskPresent(), DiskPresentParams{Model: "*980*", Count: 1}, true, "nvme0n1", "size_bytes"},
		{"two disks", DiskPresent(), DiskPresentParams{Count: 2}, true, "", "disks_matching"},
		{"ram 8GiB", MemoryMin(), MemoryMinParams{Min: 8 << 30}, true, "", "memory_bytes"},
		{"ram 16GB", MemoryMin(), MemoryMinParams{Min: 16e9}, false, "< 16GB", "memory_bytes"},
		{"usb modem", USBPresent(), USBPresentParams{ID: "2C7C:0125", Count: 1}, true, "EC25", "usb_matching"},
		{"usb vendor wildcard", USBPresent(), USBPresentParams{ID: "2c7c:*", Count: 1}, true, "", ""},
		{"usb absent", USBPresent(), USBPresentParams{ID: "1199:9071", Count: 1}, false, "found 0", "usb_matching"},
		{"cpu model", CPU(), CPUParams{Model: "*atom*x6425E*", MinCores: 4}, true, "4 cores", "cores"},
		{"cpu cores", CPU(), CPUParams{Cores: 2}, false, "4 cores, want 2", "cores"},
		{"cpu wrong model", CPU(), CPUParams{Model: "*Celeron*"}, false, "does not match", "cpu_model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.kind, tt.params, nil)
			if err != nil {
				t.Fatal(err)
			}
			if out.Pass != tt.pass || !strings.Contains(out.Reason, tt.reason) {
				t.Errorf("outcome = %v %q, want %v containing %q", out.Pass, out.Reason, tt.pass, tt.reason)
			}
			if _, ok := measurement(out, tt.meas); tt.meas != "" && !ok {
				t.Errorf("no %s measurement in %+v", tt.meas, out.Measurements)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		kind   Kind
		params any
		field  string
	}{
		{DiskPresent(), DiskPresentParams{Transport: "floppy", Count: 1}, "transport"},
		{MemoryMin(), MemoryMinParams{}, "min"},
		{USBPresent(), USBPresentParams{ID: "2c7c0125", Count: 1}, "id"},
		{CPU(), CPUParams{}, ""},
		{EthernetLink(nil), EthernetLinkParams{MAC: "52:54:00:12:34", Count: 1}, "mac"},
		{EthernetLink(nil), EthernetLinkParams{MinSpeedMbps: -1, Count: 1}, "min_speed_mbps"},
		{LTEModem(nil), LTEModemParams{SIM: "ready", MinCSQ: 32}, "min_csq"},
		{LTEModem(nil), LTEModemParams{SIM: "ready", MinSignalDBm: -130}, "min_signal_dbm"},
		{LTEModem(nil), LTEModemParams{SIM: "absent", Registered: true}, "registered"},
		{LTEModem(nil), LTEModemParams{SIM: "maybe"}, "sim"},
		{ButtonPress(nil), ButtonPressParams{Key: "KEY_POWR"}, "key"},
		{Exec(), ExecParams{}, "command"},
		{Exec(), ExecParams{Command: []string{"x"}, Measure: &ExecMeasure{Name: "m", Regexp: "no group"}}, "measure.regexp"},
	}
	for _, tt := range tests {
		p := tt.kind.NewParams()
		reflect.ValueOf(p).Elem().Set(reflect.ValueOf(tt.params))
		fe := tt.kind.Validate(p)
		if len(fe) == 0 || fe[0].Field != tt.field {
			t.Errorf("%s %+v: errors %v, want one on %q", tt.kind.Name(), tt.params, fe, tt.field)
		}
	}
}

type fakeLinks []Link

func (f fakeLinks) Links(context.Context) ([]Link, error) { return f, nil }

func TestEthernetLink(t *testing.T) {
	links := fakeLinks{{Name: "eth0", MAC: "52:54:00:12:34:56", Carrier: true, SpeedMbps: 100, Duplex: "full"}, {Name: "eth1", MAC: "52:54:00:12:34:57"}}
	tests := []struct {
		params EthernetLinkParams
		pass   bool
		reason string
	}{
		{EthernetLinkParams{Count: 1}, true, "eth0 up 100"},
		{EthernetLinkParams{MinSpeedMbps: 1000, Count: 1}, false, ">= 1000 Mb/s; eth0 100 Mb/s full; eth1 no carrier"},
		{EthernetLinkParams{Interface: "eth1", Count: 1}, false, "eth1 no carrier"},
		{EthernetLinkParams{MAC: "52:54:00:12:34:56", Duplex: "full", Count: 1}, true, ""},
		{EthernetLinkParams{Count: 2}, false, "want 2"},
		{EthernetLinkParams{Interface: "wl*", Count: 1}, false, "no wired NIC matches"},
	}
	for _, tt := range tests {
		out, err := run(t, EthernetLink(links), tt.params, nil)
		if err != nil || out.Pass != tt.pass || !strings.Contains(out.Reason, tt.reason) {
			t.Errorf("%+v: %v %q %v, want %v %q", tt.params, out.Pass, out.Reason, err, tt.pass, tt.reason)
		}
	}
	out, _ := run(t, EthernetLink(links), EthernetLinkParams{MinSpeedMbps: 1000, Count: 1}, nil)
	if m, ok := measurement(out, "link_mbps"); !ok || *m.Value != 100 {
		t.Errorf("failing link recorded %+v", out.Measurements)
	}
}

func TestSystemLinks(t *testing.T) {
	sys := t.TempDir()
	mk := func(name string, files map[string]string) {
		dir := filepath.Join(sys, "class", "net", name)
		os.MkdirAll(dir, 0o755)
		for f, v := range files {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
			os.WriteFile(filepath.Join(dir, f), []byte(v+"\n"), 0o644)
		}
	}
	mk("lo", map[string]string{"address": "00:00:00:00:00:00", "carrier": "1"})
	mk("eth0", map[string]string{"device/vendor": "0x8086", "address": "52:54:00:12:34:56", "carrier": "1", "speed": "1000", "duplex": "full"})
	mk("eth1", map[string]string{"device/vendor": "0x8086", "address": "52:54:00:12:34:57", "carrier": "0", "speed": "-1"})
	mk("wlan0", map[string]string{"device/vendor": "0x8086", "wireless/x": "", "address": "02:00:00:00:00:00"})
	links, err := SystemLinks{Sys: sys}.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Link{{Name: "eth0", MAC: "52:54:00:12:34:56", Carrier: true, SpeedMbps: 1000, Duplex: "full"}, {Name: "eth1", MAC: "52:54:00:12:34:57"}}
	if !reflect.DeepEqual(links, want) {
		t.Errorf("Links = %+v, want %+v", links, want)
	}
}

func TestExec(t *testing.T) {
	minV := 900.0
	tests := []struct {
		name   string
		p      ExecParams
		pass   bool
		reason string
	}{
		{"exit 0", ExecParams{Command: []string{"sh", "-c", "echo hello"}}, true, "exited 0"},
		{"exit 3", ExecParams{Command: []string{"sh", "-c", "echo broken >&2; exit 3"}}, false, "exited 3, want 0: broken"},
		{"expected exit", ExecParams{Command: []string{"sh", "-c", "exit 3"}, Exit: 3}, true, ""},
		{"env", ExecParams{Command: []string{"sh", "-c", `test "$FOO" = bar && test -n "$PATH"`}, Env: map[string]string{"FOO": "bar"}}, true, ""},
		{"measure", ExecParams{Command: []string{"sh", "-c", "echo '[  5] 0.0-10.0 sec  1.1 GBytes  941 Mbits/sec'"}, Measure: &ExecMeasure{Name: "mbit_s", Regexp: `([0-9.]+) Mbits/sec`, Min: &minV}}, true, "mbit_s 941"},
		{"measure low", ExecParams{Command: []string{"sh", "-c", "echo '94.1 Mbits/sec'"}, Measure: &ExecMeasure{Name: "mbit_s", Regexp: `([0-9.]+) Mbits/sec`, Min: &minV}}, false, "94.1 < 900"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, Exec(), tt.p, nil)
			if err != nil || out.Pass != tt.pass || !strings.Contains(out.Reason, tt.reason) {
				t.Errorf("%v %q %v, want %v %q", out.Pass, out.Reason, err, tt.pass, tt.reason)
			}
			if _, ok := measurement(out, "exit_code"); !ok {
				t.Error("no exit_code")
			}
		})
	}
	if _, err := run(t, Exec(), ExecParams{Command: []string{"/nonexistent/tool"}}, nil); err == nil {
		t.Error("missing binary is not an error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c, _ := Exec().New(&ExecParams{Command: []string{"sleep", "10"}})
	start := time.Now()
	out, err := c.Run(ctx, &Env{})
	if err != nil || out.Pass || !strings.Contains(out.Reason, "timed out") || time.Since(start) > 5*time.Second {
		t.Errorf("timeout: %+v %v after %s", out, err, time.Since(start))
	}
}

type fakeModem struct {
	info lte.Info
	err  error
}

func (f fakeModem) Probe(ctx context.Context, port string) (lte.Info, error) { return f.info, f.err }

func TestLTEModem(t *testing.T) {
	good := lte.Info{Port: "/dev/ttyUSB2", Model: "EC25", IMEI: "867962041234561", SIM: lte.SIMReady, ICCID: "89490200001234567890", Reg: lte.RegHome, CSQ: 20, SignalDBm: -73}
	with := func(f func(*lte.Info)) lte.Info { i := good; f(&i); return i }
	def := LTEModemParams{IMEI: true, SIM: "ready"}
	tests := []struct {
		name   string
		info   lte.Info
		err    error
		p      LTEModemParams
		pass   bool
		reason string
	}{
		{"healthy", good, nil, LTEModemParams{IMEI: true, SIM: "ready", Registered: true, MinCSQ: 10, Model: "EC25*"}, true, "CSQ 20 (-73 dBm)"},
		{"no SIM", with(func(i *lte.Info) { i.SIM, i.ICCID = lte.SIMAbsent, "" }), nil, def, false, "no SIM (CME ERROR 10)"},
		{"SIM absent wanted", with(func(i *lte.Info) { i.SIM, i.ICCID = lte.SIMAbsent, "" }), nil, LTEModemParams{IMEI: true, SIM: "absent"}, true, ""},
		{"weak", with(func(i *lte.Info) { i.CSQ, i.SignalDBm = 7, -99 }), nil, LTEModemParams{IMEI: true, SIM: "ready", MinCSQ: 10}, false, "CSQ 7 (-99 dBm) < 10"},
		{"weak dBm", with(func(i *lte.Info) { i.CSQ, i.SignalDBm = 7, -99 }), nil, LTEModemParams{IMEI: true, SIM: "ready", MinSignalDBm: -90}, false, "-99 dBm < -90 dBm"},
		{"unknown signal", with(func(i *lte.Info) { i.CSQ = 99 }), nil, LTEModemParams{IMEI: true, SIM: "ready", MinCSQ: 1}, false, "CSQ 99"},
		{"searching", with(func(i *lte.Info) { i.Reg = lte.RegSearching }), nil, LTEModemParams{IMEI: true, SIM: "ready", Registered: true}, false, "searching"},
		{"bad imei", with(func(i *lte.Info) { i.IMEI = "123" }), nil, def, false, "IMEI"},
		{"iccid glob", good, nil, LTEModemParams{SIM: "ready", ICCID: "8944*"}, false, "does not match"},
		{"no modem", lte.Info{}, errors.New("no USB serial port found"), def, false, "no modem"},
		{"modem without AT port", lte.Info{}, fmt.Errorf("probe: %w", &lte.NoATPortError{Modem: lte.Modem{Name: "1-4", VID: "1199", PID: "9079", Model: "Sierra Wireless EM7455", Control: lte.ControlMBIM, Nodes: []string{"/dev/cdc-wdm0"}}}), def, false, "Sierra Wireless EM7455 (1199:9079, 1-4) has no AT port: it is driven over MBIM (/dev/cdc-wdm0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, LTEModem(fakeModem{tt.info, tt.err}), tt.p, nil)
			if err != nil || out.Pass != tt.pass || !strings.Contains(out.Reason, tt.reason) {
				t.Errorf("%v %q %v, want %v %q", out.Pass, out.Reason, err, tt.pass, tt.reason)
			}
			if tt.err == nil {
				if _, ok := measurement(out, "imei"); !ok {
					t.Errorf("no imei measurement: %+v", out.Measurements)
				}
			}
		})
	}
}

// fakeKeys is a KeySource with some devices, keys held on some, and then events.
type fakeKeys struct {
	devices []KeyDevice // gpio-keys when empty
	held    []KeyDevice
	events  []KeyEvent
	none    bool
}

var (
	gpioKeys  = KeyDevice{Name: "gpio-keys", Node: "event2", Where: "host", Builtin: true}
	acpiPower = KeyDevice{Name: "Power Button", Node: "event0", Where: "host", Builtin: true}
	usbKbd    = KeyDevice{Name: "Logitech USB Keyboard", Node: "event5", Where: "usb"}
)

// on makes events of one device.
func on(d KeyDevice, values ...int32) []KeyEvent {
	var out []KeyEvent
	for _, v := range values {
		out = append(out, KeyEvent{Value: v, Device: d})
	}
	return out
}

func (f fakeKeys) OpenKey(ctx context.Context, code uint16) (KeyWatch, error) {
	if f.none {
		return nil, errors.New("no input device can send it")
	}
	ch := make(chan KeyEvent, len(f.events))
	for _, e := range f.events {
		ch <- e
	}
	devs := f.devices
	if devs == nil {
		devs = []KeyDevice{gpioKeys}
	}
	return &fakeWatch{devs: devs, held: f.held, ch: ch}, nil
}

type fakeWatch struct {
	devs []KeyDevice
	held []KeyDevice
	ch   chan KeyEvent
}

func (w *fakeWatch) Devices() []KeyDevice       { return w.devs }
func (w *fakeWatch) Held() ([]KeyDevice, error) { return w.held, nil }
func (w *fakeWatch) Close() error               { return nil }
func (w *fakeWatch) Next(ctx context.Context) (KeyEvent, error) {
	select {
	case v := <-w.ch:
		return v, nil
	case <-ctx.Done():
		return KeyEvent{}, ctx.Err()
	}
}

type recOp struct{ prompts []string }

func (r *recOp) Prompt(step, msg string) { r.prompts = append(r.prompts, msg) }

func TestButtonPress(t *testing.T) {
	power := func(source string) ButtonPressParams {
		return ButtonPressParams{Key: "KEY_POWER", Release: true, Source: source}
	}
	both := []KeyDevice{acpiPower, usbKbd}
	tests := []struct {
		name    string
		keys    fakeKeys
		p       ButtonPressParams
		pass    bool
		reason  string
		prompts int
		pressOn string // key_device measurement
	}{
		{"press and release", fakeKeys{events: on(gpioKeys, evdev.Press, evdev.Repeat, evdev.Release)}, power(""), true, "KEY_POWER pressed and released on gpio-keys (event2, host)", 1, "gpio-keys (event2, host)"},
		{"stuck", fakeKeys{held: []KeyDevice{gpioKeys}}, power(""), false, "held down on gpio-keys (event2, host) before the prompt", 0, ""},
		{"not pressed", fakeKeys{}, power(""), false, "KEY_POWER not pressed", 1, ""},
		{"not released", fakeKeys{events: on(gpioKeys, evdev.Press)}, power(""), false, "not released", 1, "gpio-keys (event2, host)"},
		{"press only", fakeKeys{events: on(gpioKeys, evdev.Press)}, ButtonPressParams{Key: "KEY_POWER"}, true, "pressed", 1, "gpio-keys (event2, host)"},
		{"no device", fakeKeys{none: true}, ButtonPressParams{Key: "KEY_PROG1", Release: true}, false, "no input device", 0, ""},
		// The operator's USB keyboard cannot stand in for the box's own power button.
		{"builtin: USB keyboard refused", fakeKeys{devices: both, events: on(usbKbd, evdev.Press, evdev.Release)}, power("builtin"), false, "KEY_POWER came from Logitech USB Keyboard (event5, usb), not from the device's own button (source: builtin): refused", 1, "Logitech USB Keyboard (event5, usb)"},
		{"builtin: ACPI button passes", fakeKeys{devices: both, events: on(acpiPower, evdev.Press, evdev.Release)}, power("builtin"), true, "pressed and released on Power Button (event0, host)", 1, "Power Button (event0, host)"},
		{"any: USB keyboard passes", fakeKeys{devices: both, events: on(usbKbd, evdev.Press, evdev.Release)}, power("any"), true, "on Logitech USB Keyboard (event5, usb)", 1, "Logitech USB Keyboard (event5, usb)"},
		{"builtin: only a USB keyboard can send it", fakeKeys{devices: []KeyDevice{usbKbd}}, power("builtin"), false, "no input device of the device's own button (source: builtin) can send it (only Logitech USB Keyboard (event5, usb))", 0, ""},
		{"builtin: a key held on the keyboard is not a stuck button", fakeKeys{devices: both, held: []KeyDevice{usbKbd}, events: on(acpiPower, evdev.Press, evdev.Release)}, power("builtin"), true, "Power Button", 1, "Power Button (event0, host)"},
		{"by name", fakeKeys{devices: []KeyDevice{acpiPower, gpioKeys}, events: append(on(acpiPower, evdev.Press), on(gpioKeys, evdev.Press, evdev.Release)...)}, power("gpio-*"), false, "came from Power Button (event0, host), not from an input device named \"gpio-*\"", 1, "Power Button (event0, host)"},
		{"release on another device does not count", fakeKeys{devices: []KeyDevice{acpiPower, gpioKeys}, events: append(on(gpioKeys, evdev.Press), on(acpiPower, evdev.Release)...)}, power("builtin"), false, "pressed on gpio-keys (event2, host) but not released", 1, "gpio-keys (event2, host)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := &recOp{}
			k := ButtonPress(tt.keys)
			c, _ := k.New(&tt.p)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			out, err := c.Run(ctx, &Env{Operator: op, Step: "Power button"})
			if err != nil || out.Pass != tt.pass || !strings.Contains(out.Reason, tt.reason) {
				t.Errorf("%v %q %v, want %v %q", out.Pass, out.Reason, err, tt.pass, tt.reason)
			}
			if len(op.prompts) != tt.prompts {
				t.Errorf("prompts %v", op.prompts)
			}
			if tt.prompts == 1 && op.prompts[0] != "Press POWER" {
				t.Errorf("prompt %q", op.prompts[0])
			}
			got, _ := measurement(out, "key_device")
			if got.Text != tt.pressOn {
				t.Errorf("key_device %q, want %q", got.Text, tt.pressOn)
			}
		})
	}
}

// TestSystemKeysOverFIFO drives SystemKeys' real reader: a fake sysfs tree names a device
// that can send KEY_POWER whose node is a FIFO carrying input_event records.
func TestSystemKeysOverFIFO(t *testing.T) {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	for _, n := range []struct{ node, name, keys, bus string }{{"event0", "AT Translated Set 2 keyboard", "0 0", "0011"}, {"event1", "Power Button", "10000000000000 0", "0019"}} {
		d := filepath.Join(sys, "class", "input", n.node, "device", "capabilities")
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "key"), []byte(n.keys+"\n"), 0o644)
		os.WriteFile(filepath.Join(sys, "class", "input", n.node, "device", "name"), []byte(n.name+"\n"), 0o644)
		os.MkdirAll(filepath.Join(sys, "class", "input", n.node, "device", "id"), 0o755)
		os.WriteFile(filepath.Join(sys, "class", "input", n.node, "device", "id", "bustype"), []byte(n.bus+"\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(dev, "input"), 0o755)
	fifo := filepath.Join(dev, "input", "event1")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	w, err := SystemKeys{Sys: sys, Dev: dev}.OpenKey(context.Background(), 116)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := w.Devices(); len(got) != 1 || got[0].String() != "Power Button (event1, host)" || !got[0].Builtin {
		t.Fatalf("devices %v", got)
	}
	wf, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	var b []byte
	now := time.Now()
	b = evdev.AppendEvent(b, evdev.Event{Time: now, Type: evdev.EvKey, Code: 30, Value: 1}) // another key
	b = evdev.AppendEvent(b, evdev.Event{Time: now, Type: evdev.EvKey, Code: 116, Value: 1})
	b = evdev.AppendEvent(b, evdev.Event{Time: now, Type: evdev.EvSyn})
	b = evdev.AppendEvent(b, evdev.Event{Time: now, Type: evdev.EvKey, Code: 116, Value: 0})
	wf.Write(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, want := range []int32{evdev.Press, evdev.Release} {
		ev, err := w.Next(ctx)
		if err != nil || ev.Value != want || ev.Device.Name != "Power Button" {
			t.Fatalf("Next = %+v, %v; want %d", ev, err, want)
		}
	}
	short, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	if _, err := w.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next with no event = %v", err)
	}
}

func TestRegistry(t *testing.T) {
	reg := Default()
	for _, want := range []string{"disk.present", "memory.min", "usb.present", "cpu", "ethernet.link", "lte.modem", "button.press", "exec"} {
		k, ok := reg.Lookup(want)
		if !ok {
			t.Errorf("kind %s missing", want)
			continue
		}
		if reflect.TypeOf(k.NewParams()).Kind() != reflect.Pointer || reflect.TypeOf(k.NewParams()).Elem().Kind() != reflect.Struct {
			t.Errorf("%s params are %T, want a pointer to a struct", want, k.NewParams())
		}
		if k.Doc() == "" {
			t.Errorf("%s has no doc", want)
		}
	}
	if _, err := New(CPU(), CPU()); err == nil {
		t.Error("duplicate kinds accepted")
	}
}

func TestSizeString(t *testing.T) {
	for v, want := range map[Size]string{16e9: "16GB", 16 << 30: "16GiB", 25276026880: "23.54GiB", 15758000128: "14.68GiB", 512: "512B", 3 << 20: "3MiB"} {
		if got := v.String(); got != want {
			t.Errorf("Size(%d) = %q, want %q", int64(v), got, want)
		}
	}
}
