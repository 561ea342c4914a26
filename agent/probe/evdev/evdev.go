// Package evdev reads Linux input devices (/dev/input/event*) without cgo or udev: it lists
// devices and the keys they can send from sysfs, reads input_event records with a timeout
// that honours context cancellation, and reads which keys are held down (EVIOCGKEY) so that a
// stuck button is found before the operator is asked to press it.
//
// It exists because the Go evdev libraries either are not served by the module proxy here or
// block in read(2) in a way that ignores cancellation; this one polls the non-blocking fd.
package evdev

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Event types and values used here.
const (
	EvSyn = 0x00
	EvKey = 0x01

	// Key event values.
	Release = 0
	Press   = 1
	Repeat  = 2

	// KeyMax is the highest key code.
	KeyMax = 0x2ff
)

// KeyCode returns the code of a key named as in the kernel's headers (KEY_POWER, BTN_0), or
// given as a number (116, 0x74).
func KeyCode(name string) (uint16, bool) {
	if c, ok := keyCodes[strings.ToUpper(strings.TrimSpace(name))]; ok {
		return c, true
	}
	if n, err := strconv.ParseUint(strings.TrimSpace(name), 0, 16); err == nil && n <= KeyMax {
		return uint16(n), true
	}
	return 0, false
}

// KeyName returns the kernel's name of a key code (the KEY_ name when a BTN_ alias shares it).
func KeyName(code uint16) string {
	best := ""
	for n, c := range keyCodes {
		if c == code && (best == "" || (strings.HasPrefix(n, "KEY_") && !strings.HasPrefix(best, "KEY_")) || (n[:4] == best[:4] && n < best)) {
			best = n
		}
	}
	if best == "" {
		return fmt.Sprintf("KEY_%d", code)
	}
	return best
}

// Bits is a key bitmap indexed by key code.
type Bits []uint64

// Has reports whether bit code is set.
func (b Bits) Has(code uint16) bool {
	i := int(code) / 64
	return i < len(b) && b[i]&(1<<(code%64)) != 0
}

// Codes returns the set bits in increasing order.
func (b Bits) Codes() []uint16 {
	var out []uint16
	for i, w := range b {
		for w != 0 {
			j := bits.TrailingZeros64(w)
			out = append(out, uint16(i*64+j))
			w &^= 1 << j
		}
	}
	return out
}

// ParseBitmap parses a sysfs capability bitmap such as capabilities/key: hex words of the
// kernel's long size separated by spaces, most significant word first. wordBits is 64 on
// 64-bit kernels and 32 on 32-bit ones.
func ParseBitmap(s string, wordBits int) (Bits, error) {
	fields := strings.Fields(s)
	var b Bits
	for i := range fields {
		w, err := strconv.ParseUint(fields[len(fields)-1-i], 16, wordBits)
		if err != nil {
			return nil, fmt.Errorf("parse bitmap word %q: %w", fields[len(fields)-1-i], err)
		}
		for j := 0; j < wordBits; j++ {
			if w&(1<<j) != 0 {
				bit := i*wordBits + j
				for len(b) <= bit/64 {
					b = append(b, 0)
				}
				b[bit/64] |= 1 << (bit % 64)
			}
		}
	}
	return b, nil
}

// Info describes one input device as sysfs shows it.
type Info struct {
	Name string // "Power Button", "gpio-keys"
	Node string // event0
	Path string // /dev/input/event0
	Keys Bits
	// Bus is the bus type (BusHost, BusUSB ...), 0 when sysfs does not say; Phys the
	// device's physical path ("usb-0000:00:14.0-3/input0", "LNXPWRBN/button/input0");
	// SysPath the resolved sysfs directory of the input device.
	Bus     uint16
	Phys    string
	SysPath string
}

// List returns the event devices under sysRoot (/sys) with their device nodes under devRoot
// (/dev), sorted by node number.
func List(sysRoot, devRoot string) ([]Info, error) {
	dir := filepath.Join(sysRoot, "class", "input")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list input devices: %w", err)
	}
	var out []Info
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "event") {
			continue
		}
		base := filepath.Join(dir, e.Name(), "device")
		name, _ := os.ReadFile(filepath.Join(base, "name"))
		info := Info{Name: strings.TrimSpace(string(name)), Node: e.Name(), Path: filepath.Join(devRoot, "input", e.Name())}
		if caps, err := os.ReadFile(filepath.Join(base, "capabilities", "key")); err == nil {
			info.Keys, _ = ParseBitmap(string(caps), bits.UintSize)
		}
		readSource(base, &info)
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return nodeNum(out[i].Node) < nodeNum(out[j].Node) })
	return out, nil
}

func nodeNum(s string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(s, "event"))
	return n
}

// Event is one input_event.
type Event struct {
	Time  time.Time
	Type  uint16
	Code  uint16
	Value int32
}

// EventSize is the size of struct input_event on this platform: a struct timeval of two
// longs, then type, code and value.
const EventSize = 2*bits.UintSize/8 + 8

// ParseEvent decodes one input_event record of EventSize bytes in native (little-endian on
// every platform the agent runs on) byte order.
func ParseEvent(b []byte) (Event, error) {
	return parseEvent(b, bits.UintSize/8)
}

func parseEvent(b []byte, longSize int) (Event, error) {
	size := 2*longSize + 8
	if len(b) < size {
		return Event{}, fmt.Errorf("input event of %d bytes, want %d", len(b), size)
	}
	le := binary.LittleEndian
	var sec, usec int64
	if longSize == 8 {
		sec, usec = int64(le.Uint64(b)), int64(le.Uint64(b[8:]))
	} else {
		sec, usec = int64(int32(le.Uint32(b))), int64(int32(le.Uint32(b[4:])))
	}
	o := 2 * longSize
	return Event{
		Time:  time.Unix(sec, usec*1000),
		Type:  le.Uint16(b[o:]),
		Code:  le.Uint16(b[o+2:]),
		Value: int32(le.Uint32(b[o+4:])),
	}, nil
}

// AppendEvent encodes ev as a native input_event record (tests and fakes write these).
func AppendEvent(b []byte, ev Event) []byte {
	le := binary.LittleEndian
	us := ev.Time.UnixMicro()
	if bits.UintSize == 64 {
		b = le.AppendUint64(b, uint64(us/1e6))
		b = le.AppendUint64(b, uint64(us%1e6))
	} else {
		b = le.AppendUint32(b, uint32(us/1e6))
		b = le.AppendUint32(b, uint32(us%1e6))
	}
	b = le.AppendUint16(b, ev.Type)
	b = le.AppendUint16(b, ev.Code)
	return le.AppendUint32(b, uint32(ev.Value))
}

// Device is an open event device.
type Device struct {
	f       *os.File
	fd      int
	pending []Event
	buf     []byte
}

// Open opens an event device for reading.
func Open(path string) (*Device, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Device{f: os.NewFile(uintptr(fd), path), fd: fd}, nil
}

// FromFile reads events from an already open file (a pipe in tests). The file should be
// non-blocking; Device polls before every read.
func FromFile(f *os.File) *Device {
	return &Device{f: f, fd: int(f.Fd())}
}

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }

// pollSlice bounds how long a poll blocks before ctx is checked again.
const pollSlice = 100 * time.Millisecond

// Read returns the next event. It waits until one arrives, ctx is done (returning ctx's
// error) or the device goes away.
func (d *Device) Read(ctx context.Context) (Event, error) {
	for len(d.pending) == 0 {
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
		wait := pollSlice
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, max(time.Until(dl), time.Millisecond))
		}
		fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(wait.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return Event{}, fmt.Errorf("poll %s: %w", d.f.Name(), err)
		}
		if n == 0 {
			continue
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
			return Event{}, fmt.Errorf("read %s: device gone", d.f.Name())
		}
		if d.buf == nil {
			d.buf = make([]byte, 64*EventSize)
		}
		m, err := unix.Read(d.fd, d.buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return Event{}, fmt.Errorf("read %s: %w", d.f.Name(), err)
		}
		if m == 0 {
			return Event{}, fmt.Errorf("read %s: end of file", d.f.Name())
		}
		// The kernel only ever returns whole events.
		for off := 0; off+EventSize <= m; off += EventSize {
			ev, _ := ParseEvent(d.buf[off : off+EventSize])
			d.pending = append(d.pending, ev)
		}
	}
	ev := d.pending[0]
	d.pending = d.pending[1:]
	return ev, nil
}

// eviocgkey returns the EVIOCGKEY(len) ioctl request: _IOC(_IOC_READ, 'E', 0x18, len).
func eviocgkey(size int) uint {
	const iocRead = 2
	return uint(iocRead<<30 | size<<16 | 'E'<<8 | 0x18)
}

// KeyState returns the keys held down right now.
func (d *Device) KeyState() (Bits, error) {
	buf := make([]byte, (KeyMax+1+7)/8)
	if err := ioctlBytes(d.fd, eviocgkey(len(buf)), buf); err != nil {
		return nil, fmt.Errorf("EVIOCGKEY on %s: %w", d.f.Name(), err)
	}
	b := make(Bits, (len(buf)+7)/8)
	for i, c := range buf {
		b[i/8] |= uint64(c) << (8 * (i % 8))
	}
	return b, nil
}
