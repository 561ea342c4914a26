package bluetooth

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustMAC(s string) net.HardwareAddr {
	a, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return a
}

// fakeKernel plays the kernel's side of the management socket.
type fakeKernel struct {
	mu       sync.Mutex
	cond     *sync.Cond
	queue    [][]byte
	deadline time.Time

	indexes   []uint16
	found     [][]byte // DEVICE_FOUND parameters sent per discovery round
	powered   bool
	commands  []uint16
	busyFirst bool
	powerFail Status
}

func newFake() *fakeKernel {
	k := &fakeKernel{}
	k.cond = sync.NewCond(&k.mu)
	return k
}

func evPacket(code, index uint16, params []byte) []byte {
	b := make([]byte, 6, 6+len(params))
	binary.LittleEndian.PutUint16(b, code)
	binary.LittleEndian.PutUint16(b[2:], index)
	binary.LittleEndian.PutUint16(b[4:], uint16(len(params)))
	return append(b, params...)
}

func complete(op, index uint16, status Status, params []byte) []byte {
	p := binary.LittleEndian.AppendUint16(nil, op)
	p = append(p, byte(status))
	return evPacket(evCmdComplete, index, append(p, params...))
}

func (k *fakeKernel) push(pkts ...[]byte) {
	k.queue = append(k.queue, pkts...)
	k.cond.Broadcast()
}

func (k *fakeKernel) Write(b []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	op := binary.LittleEndian.Uint16(b)
	idx := binary.LittleEndian.Uint16(b[2:])
	params := b[6:]
	k.commands = append(k.commands, op)
	switch op {
	case opReadIndexList:
		p := binary.LittleEndian.AppendUint16(nil, uint16(len(k.indexes)))
		for _, i := range k.indexes {
			p = binary.LittleEndian.AppendUint16(p, i)
		}
		k.push(complete(op, idx, 0, p))
	case opReadInfo:
		p := make([]byte, 280)
		copy(p, []byte{1, 0, 0, 0xaa, 0, 0, 9})
		copy(p[20:], "fake")
		k.push(complete(op, idx, 0, p))
	case opSetPowered, opSetLE:
		if op == opSetPowered && k.powerFail != 0 {
			k.push(complete(op, idx, k.powerFail, nil))
			break
		}
		k.powered = true
		k.push(complete(op, idx, 0, []byte{0, 0, 0, 0}))
	case opStartDiscovery:
		if k.busyFirst {
			k.busyFirst = false
			k.push(complete(op, idx, statusBusy, params))
			break
		}
		k.push(evPacket(evDiscovering, idx, []byte{params[0], 1}))
		k.push(complete(op, idx, 0, params))
		for _, f := range k.found {
			k.push(evPacket(evDeviceFound, idx, f))
		}
		k.push(evPacket(evDiscovering, idx, []byte{params[0], 0}))
	case opStopDiscovery:
		k.push(complete(op, idx, 0, params))
	default:
		k.push(complete(op, idx, 0x01, nil))
	}
	return len(b), nil
}

func (k *fakeKernel) Read(b []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for len(k.queue) == 0 {
		if !k.deadline.IsZero() && !time.Now().Before(k.deadline) {
			return 0, os.ErrDeadlineExceeded
		}
		k.cond.Wait()
	}
	n := copy(b, k.queue[0])
	k.queue = k.queue[1:]
	return n, nil
}

func (k *fakeKernel) SetReadDeadline(t time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deadline = t
	k.cond.Broadcast()
	if !t.IsZero() {
		go func() {
			time.Sleep(time.Until(t))
			k.mu.Lock()
			k.cond.Broadcast()
			k.mu.Unlock()
		}()
	}
	return nil
}

func intp(i int) *int { return &i }

func TestScan(t *testing.T) {
	target := "C0:FF:EE:00:00:01"
	other := deviceFound("11:22:33:44:55:66", AddrLEPublic, -30, nil)
	tests := []struct {
		name      string
		indexes   []uint16
		found     [][]byte
		minRSSI   *int
		busyFirst bool
		powerFail Status
		wantErr   error
		wantMsg   string
		wantRSSI  int
	}{
		{name: "found BR/EDR", indexes: []uint16{0}, found: [][]byte{other, deviceFound(target, AddrBREDR, -50, []byte{3, 9, 'h', 'i'})}, minRSSI: intp(-70), wantRSSI: -50},
		{name: "busy then found", indexes: []uint16{2}, busyFirst: true, found: [][]byte{deviceFound(target, AddrLEPublic, -40, nil)}, wantRSSI: -40},
		{name: "too weak", indexes: []uint16{0}, found: [][]byte{deviceFound(target, AddrBREDR, -90, nil)}, minRSSI: intp(-70), wantErr: ErrNotFound, wantMsg: "-90 dBm, below the minimum -70 dBm"},
		{name: "missing", indexes: []uint16{0}, found: [][]byte{other}, wantErr: ErrNotFound, wantMsg: "C0:FF:EE:00:00:01 not found by BR/EDR+LE discovery on hci0 after"},
		// BlueZ's btvirt reports LE advertisements with RSSI 127, "not available".
		{name: "RSSI not available fails a minimum", indexes: []uint16{0}, found: [][]byte{deviceFound(target, AddrLEPublic, 127, nil)}, minRSSI: intp(-70), wantErr: ErrNotFound, wantMsg: "seen, but with no RSSI"},
		{name: "RSSI not available without a minimum", indexes: []uint16{0}, found: [][]byte{deviceFound(target, AddrLEPublic, 127, nil)}, wantRSSI: 127},
		{name: "a real RSSI beats not available", indexes: []uint16{0}, found: [][]byte{deviceFound(target, AddrLEPublic, 127, nil), deviceFound(target, AddrBREDR, -60, nil)}, minRSSI: intp(-70), wantRSSI: -60},
		{name: "missing, others without RSSI", indexes: []uint16{0}, found: [][]byte{deviceFound("11:22:33:44:55:66", AddrLEPublic, 127, nil)}, wantErr: ErrNotFound, wantMsg: "saw 11:22:33:44:55:66 (RSSI not reported)"},
		{name: "no controller", wantErr: ErrNoController},
		{name: "hard rfkill", indexes: []uint16{0}, powerFail: statusRFKilled, wantErr: ErrController, wantMsg: "power on: blocked by rfkill"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFake()
			k.indexes, k.found, k.busyFirst, k.powerFail = tt.indexes, tt.found, tt.busyFirst, tt.powerFail
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			res, err := Scan(ctx, k, Request{Address: mustMAC(target), MinRSSI: tt.minRSSI, ControllerWait: 100 * time.Millisecond})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Found == nil || res.Found.RSSI != tt.wantRSSI || !k.powered {
				t.Fatalf("result %+v, powered %v", res, k.powered)
			}
			if res.Info.Name != "fake" || res.Controller != int(tt.indexes[0]) {
				t.Errorf("controller %d info %+v", res.Controller, res.Info)
			}
			if last := k.commands[len(k.commands)-1]; last != opStopDiscovery {
				t.Errorf("last command 0x%04x, want STOP_DISCOVERY", last)
			}
		})
	}
}
