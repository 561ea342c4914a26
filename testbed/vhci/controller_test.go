package vhci

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pipe is a packet transport: every Read returns one packet written by the
// test, every Write is one packet from the controller.
type pipe struct {
	in  chan []byte
	out chan []byte
}

func newPipe() *pipe { return &pipe{in: make(chan []byte, 16), out: make(chan []byte, 64)} }

func (p *pipe) Read(b []byte) (int, error) {
	pkt, ok := <-p.in
	if !ok {
		return 0, io.EOF
	}
	return copy(b, pkt), nil
}

func (p *pipe) Write(b []byte) (int, error) {
	p.out <- append([]byte(nil), b...)
	return len(b), nil
}

func (p *pipe) next(t *testing.T) []byte {
	t.Helper()
	select {
	case pkt := <-p.out:
		return pkt
	case <-time.After(5 * time.Second):
		t.Fatal("no packet from the controller")
		return nil
	}
}

func cmdPacket(opcode uint16, params ...byte) []byte {
	b := []byte{pktCommand, 0, 0, byte(len(params))}
	binary.LittleEndian.PutUint16(b[1:], opcode)
	return append(b, params...)
}

func mac(s string) net.HardwareAddr {
	a, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return a
}

func start(t *testing.T, peers ...Peer) (*pipe, context.CancelFunc) {
	t.Helper()
	p := newPipe()
	p.in <- []byte{pktVendor, 0x00, 0x03, 0x00} // the driver's answer: hci3
	ctx, cancel := context.WithCancel(context.Background())
	c, err := New(ctx, p, Config{Address: mac("00:aa:01:00:00:01"), Peers: peers, ReportDelay: 10 * time.Millisecond, InquiryTime: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.next(t); string(got) != string([]byte{pktVendor, 0}) {
		t.Fatalf("create request = % x", got)
	}
	if c.Index() != 3 {
		t.Fatalf("index = %d, want 3", c.Index())
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		close(p.in)
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	return p, cancel
}

func TestCommandCompleteSizes(t *testing.T) {
	tests := []struct {
		opcode uint16
		retLen int // return parameters including status
	}{
		{0x0c03, 1},   // Reset
		{0x1001, 9},   // Read Local Version
		{0x1002, 65},  // Read Local Supported Commands
		{0x1003, 9},   // Read Local Features
		{0x1005, 8},   // Read Buffer Size
		{0x1009, 7},   // Read BD_ADDR
		{0x0c14, 249}, // Read Local Name
		{0x0c23, 4},   // Read Class of Device
		{0x0c25, 3},   // Read Voice Setting
		{0x0c38, 2},   // Read Number of Supported IAC
		{0x0c39, 5},   // Read Current IAC LAP
		{0x2002, 4},   // LE Read Buffer Size
		{0x2003, 9},   // LE Read Local Features
		{0x201c, 9},   // LE Read Supported States
		{0x0c13, 1},   // Write Local Name
	}
	p, _ := start(t)
	for _, tt := range tests {
		p.in <- cmdPacket(tt.opcode)
		ev := p.next(t)
		if ev[0] != pktEvent || ev[1] != evtCommandComplete {
			t.Fatalf("0x%04x: answer % x is not Command Complete", tt.opcode, ev[:2])
		}
		if int(ev[2]) != len(ev)-3 {
			t.Fatalf("0x%04x: event length %d, packet has %d", tt.opcode, ev[2], len(ev)-3)
		}
		if got := binary.LittleEndian.Uint16(ev[4:6]); got != tt.opcode {
			t.Errorf("0x%04x: answer names opcode 0x%04x", tt.opcode, got)
		}
		if got := len(ev) - 6; got != tt.retLen {
			t.Errorf("0x%04x: %d return bytes, want %d", tt.opcode, got, tt.retLen)
		}
		if ev[6] != 0 {
			t.Errorf("0x%04x: status %d", tt.opcode, ev[6])
		}
	}
	p.in <- cmdPacket(0x1009)
	ev := p.next(t)
	if got := net.HardwareAddr(reversed(ev[7:13])).String(); got != "00:aa:01:00:00:01" {
		t.Errorf("BD_ADDR = %s", got)
	}
}

func TestInquiryReportsPeer(t *testing.T) {
	peer := Peer{Address: mac("c0:ff:ee:00:00:01"), Name: "line-beacon", RSSI: -42, BREDR: true}
	p, _ := start(t, peer, Peer{Address: mac("c0:ff:ee:00:00:02"), LE: true})
	p.in <- cmdPacket(opInquiry, 0x33, 0x8b, 0x9e, 0x08, 0x00)
	if ev := p.next(t); ev[1] != evtCommandStatus || ev[3] != 0 {
		t.Fatalf("inquiry answer % x, want Command Status success", ev)
	}
	ev := p.next(t)
	if ev[1] != evtExtInquiryResult || ev[2] != 255 {
		t.Fatalf("got % x, want a 255-byte Extended Inquiry Result", ev[:3])
	}
	params := ev[3:]
	if got := net.HardwareAddr(reversed(params[1:7])).String(); got != "c0:ff:ee:00:00:01" {
		t.Errorf("address %s", got)
	}
	if got := int8(params[14]); got != -42 {
		t.Errorf("RSSI %d", got)
	}
	eir := params[15:]
	if int(eir[0]) != len("line-beacon")+1 || eir[1] != 0x09 || string(eir[2:2+len("line-beacon")]) != "line-beacon" {
		t.Errorf("EIR % x", eir[:16])
	}
	if ev := p.next(t); ev[1] != evtInquiryComplete {
		t.Fatalf("got % x, want Inquiry Complete", ev)
	}
}

func TestLEScanReportsAdvertisementThenScanResponse(t *testing.T) {
	p, _ := start(t, Peer{Address: mac("c0:ff:ee:00:00:01"), Name: "x", RSSI: -60, LE: true})
	p.in <- cmdPacket(opLESetScanEnable, 1, 0)
	if ev := p.next(t); ev[1] != evtCommandComplete {
		t.Fatalf("scan enable answer % x", ev)
	}
	adv, rsp := p.next(t), p.next(t)
	for _, tc := range []struct {
		ev  []byte
		typ byte
	}{{adv, advInd}, {rsp, scanRsp}} {
		ev := tc.ev
		if ev[1] != evtLEMeta || ev[3] != leSubAdvertisingReport || ev[5] != tc.typ {
			t.Fatalf("got % x, want advertising report type %d", ev, tc.typ)
		}
		if int8(ev[len(ev)-1]) != -60 {
			t.Errorf("RSSI %d", int8(ev[len(ev)-1]))
		}
	}
	p.in <- cmdPacket(opLESetScanEnable, 0, 0)
	for {
		ev := p.next(t)
		if ev[1] == evtCommandComplete {
			break
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	f.Add(cmdPacket(0x0c03))
	f.Add(cmdPacket(opInquiry, 1, 2, 3, 4, 5))
	f.Add([]byte{pktCommand, 1})
	f.Add([]byte{pktACL, 1, 2, 3})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		cmd, ok, err := parseCommand(pkt)
		if err != nil || !ok {
			return
		}
		if len(cmd.Params) != int(pkt[3]) {
			t.Fatalf("params %d, header %d", len(cmd.Params), pkt[3])
		}
	})
}

// The kernel interleaves LE scanning and inquiry: disabling the LE scan
// must not end a running inquiry.
func TestLEScanDisableKeepsInquiry(t *testing.T) {
	p, _ := start(t, Peer{Address: mac("c0:ff:ee:00:00:01"), RSSI: -40, BREDR: true})
	p.in <- cmdPacket(opInquiry, 0x33, 0x8b, 0x9e, 0x08, 0x00)
	if ev := p.next(t); ev[1] != evtCommandStatus {
		t.Fatalf("got % x", ev)
	}
	p.in <- cmdPacket(opLESetScanEnable, 0, 0)
	var codes []byte
	for len(codes) < 3 {
		codes = append(codes, p.next(t)[1])
	}
	want := []byte{evtCommandComplete, evtExtInquiryResult, evtInquiryComplete}
	if string(codes) != string(want) {
		t.Fatalf("events % x, want % x", codes, want)
	}
}
