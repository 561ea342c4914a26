package vhci

import "encoding/binary"

// Controller identity: a Bluetooth 5.0 dual-mode controller from the
// "packet decoder" manufacturer ID 0x003f (Bluetooth SIG test use).
const (
	hciVersion   = 0x09
	manufacturer = 0x003f
)

// features is page 0 of the LMP features: 3- and 5-slot packets, RSSI with inquiry results (byte 3
// bit 6), LE supported controller (byte 4 bit 6), extended inquiry response
// (byte 6 bit 0). No secure simple pairing and no extended features, which
// keeps the kernel's power-on sequence short.
var features = [8]byte{0x03, 0x00, 0x00, 0x40, 0x40, 0x00, 0x01, 0x00}

// returnParams builds the Command Complete return parameters for opcode:
// status 0 followed by exactly the number of bytes the specification
// defines, because the kernel drops answers of the wrong size. Commands not
// listed return the status alone, which is correct for every write command.
func (c *Controller) returnParams(opcode uint16) []byte {
	r := []byte{0}
	le16 := func(v uint16) { r = binary.LittleEndian.AppendUint16(r, v) }
	switch opcode {
	case 0x1001: // Read Local Version Information
		r = append(r, hciVersion)
		le16(0x0000)
		r = append(r, hciVersion)
		le16(manufacturer)
		le16(0x0000)
	case 0x1002: // Read Local Supported Commands: none optional
		r = append(r, make([]byte, 64)...)
	case 0x1003: // Read Local Supported Features
		r = append(r, features[:]...)
	case 0x1004: // Read Local Extended Features (page, max page, features)
		r = append(r, 0, 0)
		r = append(r, features[:]...)
	case 0x1005: // Read Buffer Size
		le16(1021)
		r = append(r, 64)
		le16(8)
		le16(8)
	case 0x1009: // Read BD_ADDR
		r = append(r, reversed(c.cfg.Address)...)
	case 0x0c14: // Read Local Name
		r = append(r, make([]byte, 248)...)
	case 0x0c23: // Read Class of Device
		r = append(r, 0, 0, 0)
	case 0x0c25: // Read Voice Setting
		le16(0x0060)
	case 0x0c38: // Read Number of Supported IAC
		r = append(r, 1)
	case 0x0c39: // Read Current IAC LAP: one, the general inquiry LAP
		r = append(r, 1, 0x33, 0x8b, 0x9e)
	case 0x0c1b: // Read Page Scan Activity
		le16(0x0800)
		le16(0x0012)
	case 0x0c46: // Read Page Scan Type
		r = append(r, 0)
	case 0x0c58: // Read Inquiry Response Transmit Power Level
		r = append(r, 0)
	case 0x0c0d: // Read Stored Link Key
		le16(0)
		le16(0)
	case 0x0c12: // Delete Stored Link Key
		le16(0)
	case 0x080e: // Read Default Link Policy Settings
		le16(0)
	case 0x0c6c: // Read LE Host Supported
		r = append(r, 0, 0)
	case 0x2002: // LE Read Buffer Size
		le16(27)
		r = append(r, 8)
	case 0x2003: // LE Read Local Supported Features: legacy only
		r = append(r, make([]byte, 8)...)
	case 0x2007: // LE Read Advertising Physical Channel Tx Power
		r = append(r, 0)
	case 0x200f: // LE Read Accept List Size
		r = append(r, 8)
	case 0x201c: // LE Read Supported States
		r = append(r, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03, 0x00, 0x00)
	case 0x2018: // LE Rand
		r = append(r, 1, 2, 3, 4, 5, 6, 7, 8)
	case 0x202a: // LE Read Resolving List Size
		r = append(r, 8)
	case 0x202f: // LE Read Maximum Data Length
		le16(27)
		le16(328)
		le16(27)
		le16(328)
	case 0x2023: // LE Read Suggested Default Data Length
		le16(27)
		le16(328)
	}
	return r
}
