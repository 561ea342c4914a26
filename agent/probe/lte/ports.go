package lte

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.bug.st/serial"
)

// Port is a serial port that may be a modem's AT port.
type Port struct {
	Name      string // ttyUSB2
	Path      string // /dev/ttyUSB2
	Driver    string // option, qcserial, cdc_acm, ftdi_sio ...
	VID, PID  string // of the USB device
	Interface int    // USB interface number, -1 when unknown
	// Rank orders candidates: 3 the known AT interface of a known modem, 2 a modem driver's
	// port, 1 any other USB serial port (a modem behind a generic USB-serial chip, or QEMU's
	// usb-serial).
	Rank int
	// Role is the port's function when the modem's layout or WWAN port type says it
	// (RoleAT, RoleModem, RoleDM ...); empty when unknown.
	Role string
}

// isModemDriver reports whether a kernel driver binds modem serial interfaces.
func isModemDriver(d string) bool {
	switch d {
	case "option", "qcserial", "cdc_acm", "sierra", "usb_wwan":
		return true
	}
	return false
}

// atInterface is the AT command interface of known modems, by USB vendor (and product).
// Quectel (EC2x/EG2x/BG9x): 0 DM, 1 NMEA, 2 AT, 3 AT/PPP. Sierra Wireless (qcserial): 3.
// Telit LE910/LN9xx: 2 (interface 0 is diagnostics). SIMCom SIM7600: 2.
func atInterface(vid, pid string) (int, bool) {
	switch strings.ToLower(vid) {
	case "2c7c", "1bc7", "1e0e":
		return 2, true
	case "1199":
		return 3, true
	}
	return 0, false
}

// FindPorts lists the tty devices under sysRoot that sit on USB, best AT candidates first.
func FindPorts(sysRoot, devRoot string) ([]Port, error) {
	dir := filepath.Join(sysRoot, "class", "tty")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list ttys: %w", err)
	}
	var out []Port
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "ttyUSB") && !strings.HasPrefix(name, "ttyACM") {
			continue
		}
		dev, err := filepath.EvalSymlinks(filepath.Join(dir, name, "device"))
		if err != nil {
			continue
		}
		// ttyACM's device is the USB interface itself; ttyUSB's is a usb-serial port
		// under the interface.
		iface := dev
		if _, err := os.Stat(filepath.Join(iface, "bInterfaceNumber")); err != nil {
			iface = filepath.Dir(dev)
		}
		p := Port{Name: name, Path: filepath.Join(devRoot, name), Interface: -1}
		if drv, err := filepath.EvalSymlinks(filepath.Join(iface, "driver")); err == nil {
			p.Driver = filepath.Base(drv)
		}
		if n, err := strconv.ParseInt(readTrim(filepath.Join(iface, "bInterfaceNumber")), 16, 16); err == nil {
			p.Interface = int(n)
		}
		usbDev := filepath.Dir(iface)
		p.VID, p.PID = readTrim(filepath.Join(usbDev, "idVendor")), readTrim(filepath.Join(usbDev, "idProduct"))
		p.Rank = 1
		if isModemDriver(p.Driver) {
			p.Rank = 2
			if n, ok := atInterface(p.VID, p.PID); ok && n == p.Interface {
				p.Rank = 3
			}
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Rank != out[j].Rank {
			return out[i].Rank > out[j].Rank
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// OpenSerial opens a serial port at 115200 8N1 (USB modems ignore the rate).
func OpenSerial(path string) (io.ReadWriteCloser, error) {
	p, err := serial.Open(path, &serial.Mode{BaudRate: 115200})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// A bounded read timeout lets Close end the session's reader promptly.
	if err := p.SetReadTimeout(200 * time.Millisecond); err != nil {
		p.Close()
		return nil, fmt.Errorf("set read timeout on %s: %w", path, err)
	}
	return &timeoutReader{p}, nil
}

// timeoutReader turns the serial library's (0, nil) read timeouts into retries, so that
// readers above it see either data or a real error.
type timeoutReader struct{ serial.Port }

func (t *timeoutReader) Read(b []byte) (int, error) {
	for {
		n, err := t.Port.Read(b)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// Prober finds the modem on a live system and probes it.
type Prober struct {
	Sys string // "/sys"
	Dev string // "/dev"
	// Open opens a port; DefaultOpen when nil.
	Open func(path string) (io.ReadWriteCloser, error)
	// SyncTimeout is how long the first AT of a port is waited for (later tries wait
	// longer); 1s when zero. A port that never answers costs six times this.
	SyncTimeout time.Duration
}

// Probe probes the port at path, or, when path is empty, every candidate port in turn until
// one answers AT: the AT ports of the modems FindModems finds (known non-AT ports such as DM
// and NMEA are never tried), or, when no modem is found, every USB serial port (a modem
// behind a generic USB-serial chip). A modem without any AT port fails with a
// *NoATPortError that says which control interface it has.
func (p Prober) Probe(ctx context.Context, path string) (Info, error) {
	cands := []candidate{{path: path}}
	if path == "" {
		var err error
		if cands, err = p.candidates(); err != nil {
			return Info{}, err
		}
	}
	var errs []string
	for _, c := range cands {
		open := p.Open
		if open == nil {
			open = DefaultOpen
		}
		info, err := p.probeOne(ctx, open, c.path)
		if c.modem != nil {
			info.Control = c.modem.Control
			info.Device = c.modem.Describe()
		}
		if err == nil {
			return info, nil
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return Info{}, fmt.Errorf("no AT port: %s", strings.Join(errs, "; "))
}

// candidate is a port to try and the modem it belongs to (nil when not known).
type candidate struct {
	path  string
	modem *Modem
}

func (p Prober) candidates() ([]candidate, error) {
	modems, err := FindModems(p.Sys, p.Dev)
	if err != nil {
		return nil, err
	}
	var out []candidate
	var noAT []error
	for i := range modems {
		m := &modems[i]
		if len(m.ATPorts) == 0 {
			noAT = append(noAT, &NoATPortError{Modem: *m})
			continue
		}
		for _, pt := range m.ATPorts {
			out = append(out, candidate{path: pt.Path, modem: m})
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if len(noAT) > 0 {
		return nil, errors.Join(noAT...)
	}
	ports, err := FindPorts(p.Sys, p.Dev)
	if err != nil {
		return nil, err
	}
	if len(ports) == 0 {
		return nil, fmt.Errorf("no modem and no USB serial port found (no modem, or its driver is not loaded)")
	}
	for _, pt := range ports {
		out = append(out, candidate{path: pt.Path})
	}
	return out, nil
}

// DefaultOpen opens an AT port: a WWAN subsystem port (/dev/wwan0at0) is a character device
// that is not a tty, so it is opened as it is; anything else as a serial port.
func DefaultOpen(path string) (io.ReadWriteCloser, error) {
	if strings.HasPrefix(filepath.Base(path), "wwan") {
		return OpenCharDev(path)
	}
	return OpenSerial(path)
}

// OpenCharDev opens a character device for AT without any tty setup. The WWAN core takes
// one write as one AT message and hands each answer to read; the runtime poller makes
// Close end a read that is waiting.
func OpenCharDev(path string) (io.ReadWriteCloser, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

func (p Prober) probeOne(ctx context.Context, open func(string) (io.ReadWriteCloser, error), path string) (Info, error) {
	rw, err := open(path)
	if err != nil {
		return Info{}, err
	}
	defer rw.Close()
	info, err := probe(ctx, rw, p.SyncTimeout)
	info.Port = path
	if err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}
