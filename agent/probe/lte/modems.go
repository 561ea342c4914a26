package lte

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Control interfaces: how a modem is managed. A modem can have several (an EC25 in QMI mode
// has AT ports and QMI); Modem.Control names the one its network side is driven by.
const (
	ControlAT   = "at"   // serial AT ports only (option, qcserial, cdc_acm)
	ControlQMI  = "qmi"  // qmi_wwan: /dev/cdc-wdmN speaks QMI
	ControlMBIM = "mbim" // cdc_mbim: /dev/cdc-wdmN speaks MBIM
	ControlWWAN = "wwan" // the kernel's WWAN subsystem (PCIe modems: /dev/wwan0at0, wwan0mbim0 ...)
)

// Port roles, from a modem's known interface layout or the WWAN port type.
const (
	RoleAT    = "at"    // the AT command port
	RoleModem = "modem" // the PPP/data port; answers AT too, used after the AT port
	RoleDM    = "dm"    // Qualcomm diagnostics (QCDM): binary, never AT
	RoleNMEA  = "nmea"  // GNSS sentences
	RoleOther = ""      // unknown: tried after the known AT ports
)

// Modem is one cellular modem: a USB device whose interfaces are bound to modem drivers, or
// a device of the kernel's WWAN subsystem.
type Modem struct {
	Name     string // USB device (1-1) or WWAN device (wwan0)
	VID, PID string // USB ids, or PCI vendor and device for a WWAN modem on PCIe
	Model    string // from the layout table ("Quectel EC25"); empty when not known
	Control  string // ControlAT, ControlQMI, ControlMBIM or ControlWWAN
	// Controls lists every control interface present, Control first.
	Controls []string
	// ATPorts are the ports to try AT on, best first; empty when the modem has none.
	ATPorts []Port
	// Others are its ports that are known not to speak AT (DM, NMEA, QMI/MBIM nodes).
	Others []Port
	// Nodes are its QMI/MBIM control nodes (/dev/cdc-wdm0, /dev/wwan0mbim0) and network
	// interfaces (wwan0).
	Nodes []string
}

// Describe names the modem for messages: "Quectel EC25 (2c7c:0125, 1-1)".
func (m Modem) Describe() string {
	id := m.Name
	if m.VID != "" {
		id = m.VID + ":" + m.PID + ", " + m.Name
	}
	if m.Model != "" {
		return m.Model + " (" + id + ")"
	}
	return "modem " + id
}

// layout is the interface layout of a modem family: which USB interface numbers carry what.
type layout struct {
	model string
	roles map[int]string
}

// Layouts from the kernel's tables and comments (drivers/usb/serial/option.c, qcserial.c)
// and the vendors' USB descriptors:
//   - Quectel EC2x/EG9x/BG96/EM05 (option; qcserial handles the same layout for the EC20's
//     Qualcomm id): 0 DM, 1 NMEA, 2 AT, 3 AT/PPP, 4 (and 5) the network function, bound
//     by qmi_wwan or cdc_mbim and reserved from option (RSVD/NUMEP2).
//   - Sierra Wireless MC/EM73xx/74xx (qcserial's QCSERIAL_SWI layout): 0 DM, 2 NMEA, 3 AT,
//     8 QMI. In its MBIM compositions the AT interface may not be exposed at all.
//   - Fibocom L850-GL on USB (2cb7:0007): 0-1 MBIM (cdc_mbim), then three CDC ACM pairs:
//     2 AT, 4 AT, 6 (trace); cdc_acm names the communication interface.
var (
	quectelLayout = layout{roles: map[int]string{0: RoleDM, 1: RoleNMEA, 2: RoleAT, 3: RoleModem}}
	sierraLayout  = layout{roles: map[int]string{0: RoleDM, 2: RoleNMEA, 3: RoleAT}}
	l850Layout    = layout{model: "Fibocom L850-GL", roles: map[int]string{2: RoleAT, 4: RoleAT, 6: RoleOther}}
)

var quectelModels = map[string]string{
	"0121": "Quectel EC21", "0125": "Quectel EC25", "0191": "Quectel EG91", "0195": "Quectel EG95",
	"0296": "Quectel BG96", "0306": "Quectel EP06", "030a": "Quectel EM05-G", "030e": "Quectel EM05-G",
	"0127": "Quectel EM05", "0310": "Quectel EM05-CN", "0311": "Quectel EM05-G",
}

var sierraModels = map[string]string{
	"9070": "Sierra Wireless MC74xx", "9071": "Sierra Wireless MC7455", "9078": "Sierra Wireless EM74xx",
	"9079": "Sierra Wireless EM7455", "907b": "Sierra Wireless EM74xx", "9041": "Sierra Wireless MC7305/MC7355",
	"9063": "Sierra Wireless EM7305", "68c0": "Sierra Wireless MC7304/MC7354", "9091": "Sierra Wireless EM7565",
}

// lookupLayout returns the known layout of a USB modem.
func lookupLayout(vid, pid string) (layout, bool) {
	vid, pid = strings.ToLower(vid), strings.ToLower(pid)
	switch vid {
	case "2c7c":
		l := quectelLayout
		l.model = quectelModels[pid]
		return l, true
	case "1199":
		l := sierraLayout
		l.model = sierraModels[pid]
		return l, true
	case "2cb7":
		if pid == "0007" {
			return l850Layout, true
		}
	case "1bc7", "1e0e":
		// Telit LE910/LN9xx and SIMCom SIM7600: 0 diagnostics, 2 AT (the old table).
		return layout{roles: map[int]string{0: RoleDM, 2: RoleAT}}, true
	}
	return layout{}, false
}

// usbInterface is what sysfs shows of one USB interface.
type usbInterface struct {
	num                   int
	class, subclass, prot string
	driver                string
	ttys                  []string // ttyUSB2, ttyACM0
	nets                  []string // wwan0
	misc                  []string // cdc-wdm0
}

func readUSBInterface(dir string) usbInterface {
	in := usbInterface{num: -1}
	if n, err := strconv.ParseInt(readTrim(filepath.Join(dir, "bInterfaceNumber")), 16, 16); err == nil {
		in.num = int(n)
	}
	in.class = readTrim(filepath.Join(dir, "bInterfaceClass"))
	in.subclass = readTrim(filepath.Join(dir, "bInterfaceSubClass"))
	in.prot = readTrim(filepath.Join(dir, "bInterfaceProtocol"))
	if d, err := filepath.EvalSymlinks(filepath.Join(dir, "driver")); err == nil {
		in.driver = filepath.Base(d)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, "ttyUSB"): // usb-serial: the port device sits in the interface
			in.ttys = append(in.ttys, n)
		case n == "tty": // cdc_acm: interface/tty/ttyACM0
			in.ttys = append(in.ttys, listNames(filepath.Join(dir, n))...)
		case n == "net":
			in.nets = append(in.nets, listNames(filepath.Join(dir, n))...)
		case n == "usbmisc":
			in.misc = append(in.misc, listNames(filepath.Join(dir, n))...)
		}
	}
	return in
}

func listNames(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// FindModems lists the cellular modems under sysRoot: USB devices with an interface bound
// to a modem driver, and WWAN subsystem devices. Device nodes are named under devRoot.
func FindModems(sysRoot, devRoot string) ([]Modem, error) {
	var out []Modem
	usbDirs := map[string]int{} // resolved USB device dir -> index in out
	ents, err := os.ReadDir(filepath.Join(sysRoot, "bus", "usb", "devices"))
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("list USB devices: %w", err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ":") {
			continue // an interface; read through its device
		}
		dir, err := filepath.EvalSymlinks(filepath.Join(sysRoot, "bus", "usb", "devices", e.Name()))
		if err != nil {
			continue
		}
		if m, ok := usbModem(e.Name(), dir, devRoot); ok {
			usbDirs[dir] = len(out)
			out = append(out, m)
		}
	}
	wwans, err := wwanModems(sysRoot, devRoot)
	if err != nil {
		return nil, err
	}
	for _, w := range wwans {
		// A USB modem whose cdc-wdm registered with the WWAN subsystem shows up twice: its
		// WWAN ports belong to the USB modem found above.
		if i, ok := underAny(w.dir, usbDirs); ok {
			out[i].ATPorts = append(out[i].ATPorts, w.ATPorts...)
			out[i].Others = append(out[i].Others, w.Others...)
			out[i].Nodes = append(out[i].Nodes, w.Nodes...)
			out[i].Controls = appendNew(out[i].Controls, ControlWWAN)
			continue
		}
		out = append(out, w.Modem)
	}
	return out, nil
}

func underAny(dir string, parents map[string]int) (int, bool) {
	for p, i := range parents {
		if strings.HasPrefix(dir, p+string(filepath.Separator)) {
			return i, true
		}
	}
	return 0, false
}

func appendNew(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// usbModem reads the USB device at dir and reports whether it is a modem.
func usbModem(name, dir, devRoot string) (Modem, bool) {
	m := Modem{Name: name, VID: strings.ToLower(readTrim(filepath.Join(dir, "idVendor"))), PID: strings.ToLower(readTrim(filepath.Join(dir, "idProduct")))}
	if m.VID == "" {
		return m, false
	}
	lay, known := lookupLayout(m.VID, m.PID)
	m.Model = lay.model
	ents, _ := os.ReadDir(dir)
	var ifaces []usbInterface
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), name+":") {
			ifaces = append(ifaces, readUSBInterface(filepath.Join(dir, e.Name())))
		}
	}
	sort.Slice(ifaces, func(i, j int) bool { return ifaces[i].num < ifaces[j].num })
	modem := false
	var qmi, mbim, serial bool
	type cand struct {
		p    Port
		prio int
	}
	var cands []cand
	for _, in := range ifaces {
		switch in.driver {
		case "qmi_wwan":
			qmi, modem = true, true
		case "cdc_mbim":
			mbim, modem = true, true
		case "option", "qcserial", "sierra", "usb_wwan":
			modem = true
		case "cdc_acm":
			// A CDC ACM port is a modem's when the layout is known or the interface says
			// it takes AT commands (protocol 01, V.250); an Arduino or a GNSS receiver
			// is neither.
			if known || in.prot == "01" {
				modem = true
			}
		}
		for _, n := range in.nets {
			m.Nodes = append(m.Nodes, n)
		}
		for _, n := range in.misc {
			m.Nodes = append(m.Nodes, filepath.Join(devRoot, n))
		}
		for _, t := range in.ttys {
			serial = true
			p := Port{Name: t, Path: filepath.Join(devRoot, t), Driver: in.driver, VID: m.VID, PID: m.PID, Interface: in.num, Rank: 2}
			role, has := lay.roles[in.num]
			if !known || !has {
				role = RoleOther
			}
			p.Role = role
			switch role {
			case RoleAT:
				p.Rank = 3
				cands = append(cands, cand{p, 0})
			case RoleModem:
				cands = append(cands, cand{p, 1})
			case RoleOther:
				cands = append(cands, cand{p, 2})
			default:
				m.Others = append(m.Others, p)
			}
		}
	}
	if !modem {
		return m, false
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].prio < cands[j].prio })
	for _, c := range cands {
		m.ATPorts = append(m.ATPorts, c.p)
	}
	switch {
	case mbim:
		m.Control = ControlMBIM
	case qmi:
		m.Control = ControlQMI
	default:
		m.Control = ControlAT
	}
	m.Controls = []string{m.Control}
	if mbim && qmi {
		m.Controls = appendNew(m.Controls, ControlQMI)
	}
	if serial && len(m.ATPorts) > 0 {
		m.Controls = appendNew(m.Controls, ControlAT)
	}
	return m, true
}

type wwanModem struct {
	Modem
	dir string // resolved sysfs dir of the WWAN device
}

var wwanPortRE = regexp.MustCompile(`^(wwan\d+)([a-z]+)(\d+)$`)

// wwanModems reads /sys/class/wwan: devices (wwan0) and their ports (wwan0at0, wwan0mbim0),
// each port's type in its "type" attribute (AT, MBIM, QMI, QCDM, FIREHOSE, XMMRPC ...).
func wwanModems(sysRoot, devRoot string) ([]wwanModem, error) {
	dir := filepath.Join(sysRoot, "class", "wwan")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list WWAN devices: %w", err)
	}
	byName := map[string]*wwanModem{}
	var order []string
	get := func(name string) *wwanModem {
		if w, ok := byName[name]; ok {
			return w
		}
		w := &wwanModem{Modem: Modem{Name: name, Control: ControlWWAN, Controls: []string{ControlWWAN}}}
		byName[name] = w
		order = append(order, name)
		return w
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		typ := readTrim(filepath.Join(p, "type"))
		sub := wwanPortRE.FindStringSubmatch(n)
		if typ == "" && sub == nil {
			// The WWAN device itself: its parent is the modem (a PCI function, or a USB
			// interface for cdc-wdm modems).
			w := get(n)
			if real, err := filepath.EvalSymlinks(p); err == nil {
				w.dir = real
			}
			if pci, err := filepath.EvalSymlinks(filepath.Join(p, "device")); err == nil {
				w.VID = strings.TrimPrefix(readTrim(filepath.Join(pci, "vendor")), "0x")
				w.PID = strings.TrimPrefix(readTrim(filepath.Join(pci, "device")), "0x")
				if w.dir == "" {
					w.dir = filepath.Join(pci, "wwan", n)
				}
			}
			w.Model = pciModels[w.VID+":"+w.PID]
			continue
		}
		if sub == nil {
			continue
		}
		w := get(sub[1])
		if typ == "" {
			typ = sub[2]
		}
		port := Port{Name: n, Path: filepath.Join(devRoot, n), Driver: "wwan", Interface: -1, Rank: 2}
		switch strings.ToUpper(typ) {
		case "AT":
			port.Role, port.Rank = RoleAT, 3
			w.ATPorts = append(w.ATPorts, port)
		case "MBIM", "QMI":
			w.Nodes = append(w.Nodes, port.Path)
			w.Controls = appendNew(w.Controls, strings.ToLower(typ))
		case "QCDM":
			port.Role = RoleDM
			w.Others = append(w.Others, port)
		default: // FIREHOSE, XMMRPC, FASTBOOT, ADB, MIPC: not AT
			port.Role = strings.ToLower(typ)
			w.Others = append(w.Others, port)
		}
	}
	out := make([]wwanModem, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out, nil
}

// pciModels names WWAN modems on PCIe by PCI vendor:device.
var pciModels = map[string]string{
	"8086:7360": "Intel XMM7360 (Fibocom L850-GL)",
	"8086:7560": "Intel XMM7560 (Fibocom L860-GL)",
	"17cb:0306": "Qualcomm SDX55 (Quectel EM160R, Foxconn T99W175)",
	"17cb:0308": "Qualcomm SDX62/65 (Quectel RM520N)",
	"1eac:1001": "Quectel EM120R-GL",
	"1eac:1002": "Quectel EM160R-GL",
}

// NoATPortError is the error of a modem that is present but has no port to speak AT on.
type NoATPortError struct {
	Modem Modem
}

func (e *NoATPortError) Error() string {
	m := e.Modem
	var have []string
	for _, p := range m.Others {
		role := strings.ToUpper(p.Role)
		if role == "" {
			role = "unknown"
		}
		have = append(have, fmt.Sprintf("%s %s", p.Name, role))
	}
	have = append(have, m.Nodes...)
	s := fmt.Sprintf("%s has no AT port: it is driven over %s", m.Describe(), strings.ToUpper(m.Control))
	if len(have) > 0 {
		s += " (" + strings.Join(have, ", ") + ")"
	}
	return s + ", which this probe does not speak; switch the modem to a USB composition with an AT port or name the port"
}
