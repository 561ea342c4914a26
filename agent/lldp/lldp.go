// Package lldp hears which switch port a device's boot NIC is plugged into: it parses the LLDP
// (IEEE 802.1AB) frames line switches send every few seconds and listens for one on an
// interface. The line server maps the port to the station (bench, slot) the device sits in.
package lldp

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/flashline/flashline/protocol"
)

// EtherType is LLDP's Ethernet type.
const EtherType = 0x88cc

// TLV types used here (802.1AB-2016 section 8.4).
const (
	tlvEnd       = 0
	tlvChassisID = 1
	tlvPortID    = 2
	tlvTTL       = 3
	tlvPortDesc  = 4
	tlvSysName   = 5
)

// ParseFrame parses a whole Ethernet frame (destination, source, EtherType, LLDPDU), with or
// without one 802.1Q VLAN tag.
func ParseFrame(frame []byte) (protocol.LLDPNeighbor, error) {
	if len(frame) < 14 {
		return protocol.LLDPNeighbor{}, fmt.Errorf("lldp: frame of %d bytes is shorter than an Ethernet header", len(frame))
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	body := frame[14:]
	if et == 0x8100 && len(body) >= 4 {
		et = binary.BigEndian.Uint16(body[2:4])
		body = body[4:]
	}
	if et != EtherType {
		return protocol.LLDPNeighbor{}, fmt.Errorf("lldp: EtherType %#04x is not LLDP", et)
	}
	return Parse(body)
}

// Parse parses an LLDPDU: a sequence of TLVs that must start with the chassis ID, port ID and
// TTL (in that order) and ends with an End TLV or the data.
func Parse(b []byte) (protocol.LLDPNeighbor, error) {
	var n protocol.LLDPNeighbor
	for i := 0; len(b) > 0; i++ {
		if len(b) < 2 {
			return n, errors.New("lldp: truncated TLV header")
		}
		h := binary.BigEndian.Uint16(b[:2])
		typ, l := int(h>>9), int(h&0x1ff)
		b = b[2:]
		if l > len(b) {
			return n, fmt.Errorf("lldp: TLV type %d says %d bytes, %d left", typ, l, len(b))
		}
		v := b[:l]
		b = b[l:]
		if want := []int{tlvChassisID, tlvPortID, tlvTTL}; i < len(want) && typ != want[i] {
			return n, fmt.Errorf("lldp: TLV %d is type %d, want %d (chassis ID, port ID, TTL first)", i+1, typ, want[i])
		}
		switch typ {
		case tlvEnd:
			return n, nil
		case tlvChassisID:
			if l < 2 {
				return n, errors.New("lldp: chassis ID TLV too short")
			}
			n.ChassisID = renderID(v[0], v[1:], 4, 5)
		case tlvPortID:
			if l < 2 {
				return n, errors.New("lldp: port ID TLV too short")
			}
			n.PortID = renderID(v[0], v[1:], 3, 4)
		case tlvTTL:
			if l < 2 {
				return n, errors.New("lldp: TTL TLV too short")
			}
		case tlvPortDesc:
			n.PortDescription = text(v)
		case tlvSysName:
			n.SystemName = text(v)
		}
	}
	if n.PortID == "" {
		return n, errors.New("lldp: no port ID")
	}
	return n, nil
}

// renderID renders a chassis or port ID of the given subtype: the MAC subtype as a MAC, the
// network address subtype (IANA address family, then the address) as an IP, every other as
// text.
func renderID(subtype byte, v []byte, macSub, addrSub byte) string {
	switch {
	case subtype == macSub && len(v) == 6:
		return net.HardwareAddr(v).String()
	case subtype == addrSub && len(v) >= 2:
		if a, ok := netip.AddrFromSlice(v[1:]); ok && (v[0] == 1 && a.Is4() || v[0] == 2 && a.Is6()) {
			return a.String()
		}
	}
	return text(v)
}

// text keeps printable UTF-8 as it is (trimmed of NULs and spaces, as some switches pad) and
// renders anything else as hex, so an ID always compares the same way in the config.
func text(v []byte) string {
	s := strings.TrimRight(string(v), "\x00 ")
	if !utf8.ValidString(s) {
		return hex.EncodeToString(v)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return hex.EncodeToString(v)
		}
	}
	return s
}
