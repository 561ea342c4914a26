// Package bluetooth checks a device's Bluetooth controller through the
// kernel's management socket (no BlueZ daemon): it powers the controller,
// runs discovery and looks for a given peer address with a minimum RSSI.
// The mgmt wire format is decoded here by hand; see the kernel's
// doc/mgmt-api.txt (BlueZ) for the protocol.
package bluetooth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// Management opcodes used by the probe.
const (
	opReadIndexList  = 0x0003
	opReadInfo       = 0x0004
	opSetPowered     = 0x0005
	opSetLE          = 0x000d
	opStartDiscovery = 0x0023
	opStopDiscovery  = 0x0024
)

// Management event codes.
const (
	evCmdComplete  = 0x0001
	evCmdStatus    = 0x0002
	evIndexAdded   = 0x0004
	evIndexRemoved = 0x0005
	evDeviceFound  = 0x0012
	evDiscovering  = 0x0013
)

// NoIndex addresses the management interface itself rather than a controller.
const NoIndex = 0xffff

const headerLen = 6

// Discovery is the START_DISCOVERY address-type mask.
type Discovery uint8

// Discovery kinds.
const (
	BREDR Discovery = 0x01
	LE    Discovery = 0x06 // public and random LE addresses
	Both  Discovery = 0x07
)

func (d Discovery) String() string {
	switch d {
	case BREDR:
		return "BR/EDR"
	case LE:
		return "LE"
	case Both:
		return "BR/EDR+LE"
	}
	return fmt.Sprintf("discovery(0x%02x)", uint8(d))
}

// AddressType is the mgmt address type of a found device.
type AddressType uint8

// Address types.
const (
	AddrBREDR    AddressType = 0
	AddrLEPublic AddressType = 1
	AddrLERandom AddressType = 2
)

func (t AddressType) String() string {
	switch t {
	case AddrBREDR:
		return "BR/EDR"
	case AddrLEPublic:
		return "LE public"
	case AddrLERandom:
		return "LE random"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Status is a management command status.
type Status uint8

var statusText = map[Status]string{
	0x00: "success", 0x01: "unknown command", 0x02: "not connected", 0x03: "failed",
	0x04: "connect failed", 0x05: "authentication failed", 0x06: "not paired",
	0x07: "no resources", 0x08: "timeout", 0x09: "already connected", 0x0a: "busy",
	0x0b: "rejected", 0x0c: "not supported", 0x0d: "invalid parameters",
	0x0e: "disconnected", 0x0f: "not powered", 0x10: "cancelled", 0x11: "invalid index",
	0x12: "blocked by rfkill", 0x13: "already paired", 0x14: "permission denied",
}

func (s Status) String() string {
	if t, ok := statusText[s]; ok {
		return t
	}
	return fmt.Sprintf("status 0x%02x", uint8(s))
}

// Status values the probe reacts to.
const (
	statusBusy         Status = 0x0a
	statusNotSupported Status = 0x0c
	statusRFKilled     Status = 0x12
)

// event is one decoded management event.
type event struct {
	Code  uint16
	Index uint16
	Data  []byte
}

var errTruncated = errors.New("truncated management packet")

// parseEvent decodes the 6-byte header (code, index, parameter length, all
// little-endian) and checks the length.
func parseEvent(b []byte) (event, error) {
	if len(b) < headerLen {
		return event{}, errTruncated
	}
	ev := event{
		Code:  binary.LittleEndian.Uint16(b[0:2]),
		Index: binary.LittleEndian.Uint16(b[2:4]),
	}
	n := int(binary.LittleEndian.Uint16(b[4:6]))
	if len(b)-headerLen < n {
		return event{}, fmt.Errorf("event 0x%04x: %d of %d parameter bytes: %w", ev.Code, len(b)-headerLen, n, errTruncated)
	}
	ev.Data = b[headerLen : headerLen+n]
	return ev, nil
}

// encodeCommand builds a management command packet.
func encodeCommand(opcode, index uint16, params []byte) []byte {
	b := make([]byte, headerLen, headerLen+len(params))
	binary.LittleEndian.PutUint16(b[0:], opcode)
	binary.LittleEndian.PutUint16(b[2:], index)
	binary.LittleEndian.PutUint16(b[4:], uint16(len(params)))
	return append(b, params...)
}

// cmdResult is a decoded Command Complete or Command Status event.
type cmdResult struct {
	Opcode uint16
	Status Status
	Params []byte
}

func parseCmdResult(ev event) (cmdResult, error) {
	if len(ev.Data) < 3 {
		return cmdResult{}, fmt.Errorf("command result: %w", errTruncated)
	}
	r := cmdResult{Opcode: binary.LittleEndian.Uint16(ev.Data), Status: Status(ev.Data[2])}
	if ev.Code == evCmdComplete {
		r.Params = ev.Data[3:]
	}
	return r, nil
}

// parseIndexList decodes READ_INDEX_LIST's return parameters.
func parseIndexList(b []byte) ([]uint16, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("index list: %w", errTruncated)
	}
	n := int(binary.LittleEndian.Uint16(b))
	if len(b)-2 < 2*n {
		return nil, fmt.Errorf("index list of %d: %w", n, errTruncated)
	}
	idx := make([]uint16, n)
	for i := range idx {
		idx[i] = binary.LittleEndian.Uint16(b[2+2*i:])
	}
	return idx, nil
}

// Info is what READ_INFO says about a controller.
type Info struct {
	Address net.HardwareAddr
	// Version is the controller's Bluetooth core version code (9 = 5.0).
	Version      uint8
	Manufacturer uint16
	Name         string
}

func parseInfo(b []byte) (Info, error) {
	// address 6, version 1, manufacturer 2, supported 4, current 4, class 3, name 249, short name 11
	if len(b) < 6+1+2+4+4+3+249 {
		return Info{}, fmt.Errorf("controller info: %w", errTruncated)
	}
	return Info{
		Address:      addr(b[0:6]),
		Version:      b[6],
		Manufacturer: binary.LittleEndian.Uint16(b[7:9]),
		Name:         cString(b[20 : 20+249]),
	}, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// addr converts a little-endian bdaddr to display order.
func addr(b []byte) net.HardwareAddr {
	a := make(net.HardwareAddr, 6)
	for i := range 6 {
		a[i] = b[5-i]
	}
	return a
}

// Device is one DEVICE_FOUND report.
type Device struct {
	Address     net.HardwareAddr
	AddressType AddressType
	RSSI        int
	Name        string
}

// parseDeviceFound decodes DEVICE_FOUND: address, address type, RSSI,
// flags, EIR length and EIR data.
func parseDeviceFound(b []byte) (Device, error) {
	if len(b) < 14 {
		return Device{}, fmt.Errorf("device found: %w", errTruncated)
	}
	d := Device{Address: addr(b[0:6]), AddressType: AddressType(b[6]), RSSI: int(int8(b[7]))}
	n := int(binary.LittleEndian.Uint16(b[12:14]))
	if len(b)-14 < n {
		return Device{}, fmt.Errorf("device found: EIR of %d bytes: %w", n, errTruncated)
	}
	d.Name = eirName(b[14 : 14+n])
	return d, nil
}

// eirName returns the complete (or else shortened) local name from EIR or
// advertising data; malformed structures end the walk.
func eirName(eir []byte) string {
	var short string
	for len(eir) >= 2 {
		l := int(eir[0])
		if l == 0 || l+1 > len(eir) {
			break
		}
		typ, data := eir[1], eir[2:1+l]
		switch typ {
		case 0x09:
			return string(data)
		case 0x08:
			short = string(data)
		}
		eir = eir[1+l:]
	}
	return short
}
