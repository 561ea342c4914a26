// Package hwsimap turns one mac80211_hwsim radio into a minimal open access
// point driven directly over nl80211, with no hostapd: it starts beaconing a
// hand-built beacon and answers probe, authentication and association
// requests itself, adding associated stations to the kernel. It exists so a
// test machine (a QEMU guest) can scan for and join a "line AP".
package hwsimap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// 802.11 management frame subtypes (frame control first byte).
const (
	fcAssocReq    = 0x00
	fcAssocResp   = 0x10
	fcReassocReq  = 0x20
	fcReassocResp = 0x30
	fcProbeReq    = 0x40
	fcProbeResp   = 0x50
	fcBeacon      = 0x80
	fcDisassoc    = 0xa0
	fcAuth        = 0xb0
	fcDeauth      = 0xc0
)

// Information element IDs.
const (
	ieSSID       = 0
	ieRates      = 1
	ieDSParams   = 3
	ieExtRates   = 50
	capESS       = 0x0001
	capShortSlot = 0x0400
	mgmtHdrLen   = 24
)

// Rates (500 kb/s units, 0x80 = basic): 1, 2, 5.5, 11 basic; 6..54 OFDM.
var (
	suppRates = []byte{0x82, 0x84, 0x8b, 0x96, 0x0c, 0x12, 0x18, 0x24}
	extRates  = []byte{0x30, 0x48, 0x60, 0x6c}
)

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// mgmtHeader builds a management frame header; the kernel fills in the
// sequence number.
func mgmtHeader(fc byte, da, sa, bssid net.HardwareAddr) []byte {
	h := make([]byte, mgmtHdrLen)
	h[0] = fc
	copy(h[4:10], da)
	copy(h[10:16], sa)
	copy(h[16:22], bssid)
	return h
}

func ie(id byte, data []byte) []byte {
	return append([]byte{id, byte(len(data))}, data...)
}

// channel converts a 2.4 GHz frequency to its channel number.
func channel(freq int) (int, error) {
	switch {
	case freq == 2484:
		return 14, nil
	case freq >= 2412 && freq <= 2472 && (freq-2407)%5 == 0:
		return (freq - 2407) / 5, nil
	}
	return 0, fmt.Errorf("%d MHz is not a 2.4 GHz channel", freq)
}

// bssBody is the body shared by beacons and probe responses: timestamp
// (the driver fills it), beacon interval, capabilities, SSID, rates, DS.
func bssBody(ssid string, intervalTU uint16, ch int) []byte {
	b := make([]byte, 12)
	binary.LittleEndian.PutUint16(b[8:], intervalTU)
	binary.LittleEndian.PutUint16(b[10:], capESS|capShortSlot)
	b = append(b, ie(ieSSID, []byte(ssid))...)
	b = append(b, ie(ieRates, suppRates)...)
	b = append(b, ie(ieDSParams, []byte{byte(ch)})...)
	return b
}

// beacon returns the beacon head (up to the TIM, which mac80211 inserts) and
// tail.
func beacon(bssid net.HardwareAddr, ssid string, intervalTU uint16, ch int) (head, tail []byte) {
	head = append(mgmtHeader(fcBeacon, broadcast, bssid, bssid), bssBody(ssid, intervalTU, ch)...)
	tail = ie(ieExtRates, extRates)
	return head, tail
}

func probeResponse(bssid, to net.HardwareAddr, ssid string, intervalTU uint16, ch int) []byte {
	f := append(mgmtHeader(fcProbeResp, to, bssid, bssid), bssBody(ssid, intervalTU, ch)...)
	return append(f, ie(ieExtRates, extRates)...)
}

// Authentication and association status codes.
const (
	statusSuccess         = 0
	statusUnsupportedAlg  = 13
	statusAuthSeqOutOfSeq = 14
)

func authResponse(bssid, to net.HardwareAddr, alg, status uint16) []byte {
	f := mgmtHeader(fcAuth, to, bssid, bssid)
	b := make([]byte, 6)
	binary.LittleEndian.PutUint16(b[0:], alg)
	binary.LittleEndian.PutUint16(b[2:], 2)
	binary.LittleEndian.PutUint16(b[4:], status)
	return append(f, b...)
}

func assocResponse(reassoc bool, bssid, to net.HardwareAddr, status, aid uint16) []byte {
	fc := byte(fcAssocResp)
	if reassoc {
		fc = fcReassocResp
	}
	f := mgmtHeader(fc, to, bssid, bssid)
	b := make([]byte, 6)
	binary.LittleEndian.PutUint16(b[0:], capESS|capShortSlot)
	binary.LittleEndian.PutUint16(b[2:], status)
	binary.LittleEndian.PutUint16(b[4:], aid|0xc000)
	f = append(f, b...)
	f = append(f, ie(ieRates, suppRates)...)
	return append(f, ie(ieExtRates, extRates)...)
}

// frame is a parsed received management frame.
type frame struct {
	Subtype byte // frame control byte 0 with the protocol version bits cleared
	DA, SA  net.HardwareAddr
	BSSID   net.HardwareAddr
	Body    []byte
}

var errShortFrame = errors.New("short 802.11 management frame")

func parseFrame(b []byte) (frame, error) {
	if len(b) < mgmtHdrLen {
		return frame{}, errShortFrame
	}
	if b[0]&0x0c != 0 {
		return frame{}, fmt.Errorf("frame control 0x%02x: not a management frame", b[0])
	}
	return frame{
		Subtype: b[0] & 0xf0,
		DA:      net.HardwareAddr(b[4:10]),
		SA:      net.HardwareAddr(b[10:16]),
		BSSID:   net.HardwareAddr(b[16:22]),
		Body:    b[mgmtHdrLen:],
	}, nil
}

// elements walks information elements, returning them by ID (first wins).
// A truncated element ends the walk, as real stations send garbage too.
func elements(b []byte) map[byte][]byte {
	m := map[byte][]byte{}
	for len(b) >= 2 {
		l := int(b[1])
		if 2+l > len(b) {
			break
		}
		if _, ok := m[b[0]]; !ok {
			m[b[0]] = b[2 : 2+l]
		}
		b = b[2+l:]
	}
	return m
}

// assocRequest is the part of an (re)association request the AP needs.
type assocRequest struct {
	Capability     uint16
	ListenInterval uint16
	SSID           []byte
	Rates          []byte
}

func parseAssocRequest(body []byte, reassoc bool) (assocRequest, error) {
	fixed := 4
	if reassoc {
		fixed = 10 // plus the current AP address
	}
	if len(body) < fixed {
		return assocRequest{}, errShortFrame
	}
	ies := elements(body[fixed:])
	r := assocRequest{
		Capability:     binary.LittleEndian.Uint16(body[0:]),
		ListenInterval: binary.LittleEndian.Uint16(body[2:]),
		SSID:           ies[ieSSID],
	}
	r.Rates = append(append(r.Rates, ies[ieRates]...), ies[ieExtRates]...)
	return r, nil
}
