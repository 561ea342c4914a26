// Package vhci emulates a Bluetooth controller through the kernel's /dev/vhci
// driver, so that a test machine without Bluetooth hardware (a QEMU guest) has
// a real hciN device whose discovery finds configured peers. It answers the
// kernel's start-up HCI commands with correctly sized Command Complete events
// and answers inquiry (BR/EDR) and LE scanning with the configured peers.
package vhci

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HCI packet indicators as used by the H:4 transport and by /dev/vhci.
const (
	pktCommand = 0x01
	pktACL     = 0x02
	pktEvent   = 0x04
	pktVendor  = 0xff
)

// HCI event codes this emulator sends.
const (
	evtInquiryComplete     = 0x01
	evtCommandComplete     = 0x0e
	evtCommandStatus       = 0x0f
	evtExtInquiryResult    = 0x2f
	evtLEMeta              = 0x3e
	leSubAdvertisingReport = 0x02
)

// Opcodes with behaviour beyond "status 0".
const (
	opInquiry         = 0x0401
	opInquiryCancel   = 0x0402
	opReset           = 0x0c03
	opLESetScanEnable = 0x200c
	opLECreateConn    = 0x200d
	opCreateConn      = 0x0405
)

// errShort reports a packet shorter than its header says.
var errShort = errors.New("short HCI packet")

// command is one HCI command read from the kernel.
type command struct {
	Opcode uint16
	Params []byte
}

// parseCommand decodes one HCI command packet as /dev/vhci delivers it: the
// packet indicator, a little-endian opcode, a parameter length and the
// parameters. Packets that are not commands return ok=false without error.
func parseCommand(pkt []byte) (cmd command, ok bool, err error) {
	if len(pkt) == 0 {
		return command{}, false, errShort
	}
	if pkt[0] != pktCommand {
		return command{}, false, nil
	}
	if len(pkt) < 4 {
		return command{}, false, fmt.Errorf("command header: %w", errShort)
	}
	plen := int(pkt[3])
	if len(pkt)-4 < plen {
		return command{}, false, fmt.Errorf("command 0x%04x: %d parameter bytes, header says %d: %w",
			binary.LittleEndian.Uint16(pkt[1:3]), len(pkt)-4, plen, errShort)
	}
	return command{Opcode: binary.LittleEndian.Uint16(pkt[1:3]), Params: pkt[4 : 4+plen]}, true, nil
}

// event builds an HCI event packet.
func event(code byte, params []byte) []byte {
	if len(params) > 255 {
		panic("vhci: HCI event parameters longer than 255 bytes")
	}
	b := make([]byte, 0, 3+len(params))
	b = append(b, pktEvent, code, byte(len(params)))
	return append(b, params...)
}

// commandComplete builds a Command Complete event: one command credit, the
// opcode, then the return parameters (which start with the status).
func commandComplete(opcode uint16, ret []byte) []byte {
	p := make([]byte, 3, 3+len(ret))
	p[0] = 1
	binary.LittleEndian.PutUint16(p[1:], opcode)
	return event(evtCommandComplete, append(p, ret...))
}

// commandStatus builds a Command Status event for commands that complete
// later with their own events (inquiry, connection creation).
func commandStatus(opcode uint16, status byte) []byte {
	p := []byte{status, 1, 0, 0}
	binary.LittleEndian.PutUint16(p[2:], opcode)
	return event(evtCommandStatus, p)
}
