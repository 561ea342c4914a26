package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mdlayher/packet"
)

// LLDPPort is what a line switch announces about one of its ports in LLDP (IEEE 802.1AB): the
// switch (chassis ID by MAC, system name) and the port (its name and description). The line
// server maps it to a station.
type LLDPPort struct {
	ChassisMAC      net.HardwareAddr // chassis ID, subtype MAC address
	SystemName      string           // e.g. "line1-sw"
	PortID          string           // port ID, subtype interface name, e.g. "port 7"
	PortDescription string           // e.g. "bench 7"
	// TTL is how long a receiver may keep the information; default 120 s, what switches send
	// with their default 30 s interval (4 x interval).
	TTL time.Duration
}

// LLDP's destination: the nearest-bridge group address, which no bridge forwards.
var lldpNearestBridge = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

const lldpEtherType = 0x88cc

// Frame returns the whole Ethernet frame a switch port sends: chassis ID, port ID and TTL
// (mandatory, in that order), port description, system name, End.
func (p LLDPPort) Frame() ([]byte, error) {
	if len(p.ChassisMAC) != 6 {
		return nil, fmt.Errorf("lldp: chassis MAC %q: want 6 bytes", p.ChassisMAC)
	}
	if p.PortID == "" {
		return nil, errors.New("lldp: a port ID is required")
	}
	ttl := p.TTL
	if ttl == 0 {
		ttl = 120 * time.Second
	}
	b := make([]byte, 0, 128)
	b = append(b, lldpNearestBridge...)
	b = append(b, p.ChassisMAC...)
	b = binary.BigEndian.AppendUint16(b, lldpEtherType)
	var err error
	tlv := func(typ int, v []byte) {
		if err != nil {
			return
		}
		if len(v) > 511 {
			err = fmt.Errorf("lldp: TLV type %d of %d bytes: at most 511", typ, len(v))
			return
		}
		b = binary.BigEndian.AppendUint16(b, uint16(typ)<<9|uint16(len(v)))
		b = append(b, v...)
	}
	tlv(1, append([]byte{4}, p.ChassisMAC...)) // chassis ID, subtype 4: MAC address
	tlv(2, append([]byte{5}, p.PortID...))     // port ID, subtype 5: interface name
	tlv(3, binary.BigEndian.AppendUint16(nil, uint16(ttl/time.Second)))
	if p.PortDescription != "" {
		tlv(4, []byte(p.PortDescription))
	}
	if p.SystemName != "" {
		tlv(5, []byte(p.SystemName))
	}
	tlv(0, nil)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// AnnounceLLDP sends p's frame on the interface ifname (of the calling process' namespace)
// every interval until ctx ends, as the switch port the device is plugged into would. On a tap
// the frames go to the QEMU guest's NIC. The first frame goes at once. Frames sent while
// nothing holds the tap (the guest is between boots) are dropped, as on an unplugged cable;
// the returned function stops the sender and reports how many frames went out.
func AnnounceLLDP(ctx context.Context, ifname string, p LLDPPort, interval time.Duration) (stop func() (sent int), err error) {
	frame, err := p.Frame()
	if err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("lldp announce: %w", err)
	}
	c, err := packet.Listen(ifi, packet.Raw, lldpEtherType, nil)
	if err != nil {
		return nil, fmt.Errorf("lldp announce on %s: %w", ifname, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		defer c.Close()
		sent := 0
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			// A tap without its QEMU reports an error (no carrier): the frame is lost, as
			// it is on a port with nothing plugged in, and the next one goes on time.
			if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: lldpNearestBridge}); err == nil {
				sent++
			}
			select {
			case <-ctx.Done():
				done <- sent
				return
			case <-t.C:
			}
		}
	}()
	return sync.OnceValue(func() int { cancel(); return <-done }), nil
}
