package hwsimap

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
)

func TestMediumRelay(t *testing.T) {
	var mu sync.Mutex
	var sent []genetlink.Message
	c := genltest.Dial(genltest.ServeFamily(genetlink.Family{ID: 0x20, Version: 2, Name: hwsimFamily},
		func(greq genetlink.Message, _ netlink.Message) ([]genetlink.Message, error) {
			if greq.Header.Command == 0 { // genltest's own traffic
				return nil, nil
			}
			mu.Lock()
			sent = append(sent, greq)
			mu.Unlock()
			return nil, nil
		}))
	defer c.Close()
	ap := MediumAddr(net.HardwareAddr{2, 0, 0, 0, 1, 0})
	sta := MediumAddr(net.HardwareAddr{2, 0, 0, 0, 0, 0})
	if ap.String() != "42:00:00:00:01:00" {
		t.Fatalf("medium address %s", ap)
	}
	m, err := NewMedium(c, MediumConfig{SignalDBm: -75, Radios: []net.HardwareAddr{ap, sta}})
	if err != nil {
		t.Fatal(err)
	}
	frame := beaconFrame()
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(hwsimAttrAddrTransmitter, ap)
	ae.Bytes(hwsimAttrFrame, frame)
	ae.Uint32(hwsimAttrFlags, 0)
	ae.Bytes(hwsimAttrTxInfo, []byte{3, 1, 0xff, 0, 0xff, 0, 0xff, 0})
	ae.Uint64(hwsimAttrCookie, 77)
	ae.Uint32(hwsimAttrFreq, 2412)
	b, _ := ae.Encode()
	tx, err := parseTxFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.relay(tx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 3 || sent[0].Header.Command != hwsimCmdRegister {
		t.Fatalf("sent %d messages", len(sent))
	}
	deliver := attrs(t, sent[1])
	if sent[1].Header.Command != hwsimCmdFrame || !bytes.Equal(deliver[hwsimAttrAddrReceiver], sta) ||
		!bytes.Equal(deliver[hwsimAttrFrame], frame) || int32(binary.NativeEndian.Uint32(deliver[hwsimAttrSignal])) != -75 ||
		binary.NativeEndian.Uint32(deliver[hwsimAttrRxRate]) != 3 || binary.NativeEndian.Uint32(deliver[hwsimAttrFreq]) != 2412 {
		t.Errorf("delivery %v", deliver)
	}
	status := attrs(t, sent[2])
	if sent[2].Header.Command != hwsimCmdTxInfoFrame || binary.NativeEndian.Uint32(status[hwsimAttrFlags])&hwsimTxStatAck == 0 ||
		binary.NativeEndian.Uint64(status[hwsimAttrCookie]) != 77 || !bytes.Equal(status[hwsimAttrAddrTransmitter], ap) {
		t.Errorf("tx status %v", status)
	}
}

func beaconFrame() []byte {
	head, tail := beacon(net.HardwareAddr{2, 0, 0, 0, 1, 0}, "LINE-TEST", 100, 1)
	return append(head, tail...)
}

func attrs(t *testing.T, m genetlink.Message) map[uint16][]byte {
	t.Helper()
	as, err := netlink.UnmarshalAttributes(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint16][]byte{}
	for _, a := range as {
		out[a.Type] = a.Data
	}
	return out
}

func FuzzParseTxFrame(f *testing.F) {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(hwsimAttrAddrTransmitter, []byte{0x42, 0, 0, 0, 1, 0})
	ae.Bytes(hwsimAttrFrame, beaconFrame())
	ae.Uint32(hwsimAttrFlags, 2)
	b, _ := ae.Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, err := parseTxFrame(b)
		if err == nil && (len(tx.Transmitter) != 6 || len(tx.Frame) < 10) {
			t.Fatalf("accepted %+v", tx)
		}
	})
}

func TestKernelNack(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&netlink.OpError{Op: "receive", Err: syscall.EINVAL}, true},
		{&netlink.OpError{Op: "receive", Err: os.NewSyscallError("recvmsg", syscall.ENOBUFS)}, true},
		{&netlink.OpError{Op: "receive", Err: os.NewSyscallError("recvmsg", syscall.EBADF)}, false},
		{os.ErrDeadlineExceeded, false},
	}
	for _, tt := range tests {
		if got := kernelNack(tt.err); got != tt.want {
			t.Errorf("kernelNack(%v) = %v", tt.err, got)
		}
	}
}
