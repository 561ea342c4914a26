package bluetooth

import (
	"encoding/binary"
	"testing"
)

// deviceFound builds a DEVICE_FOUND event's parameters.
func deviceFound(a string, typ AddressType, rssi int8, eir []byte) []byte {
	hw := mustMAC(a)
	b := make([]byte, 14, 14+len(eir))
	for i := range 6 {
		b[i] = hw[5-i]
	}
	b[6] = byte(typ)
	b[7] = byte(rssi)
	binary.LittleEndian.PutUint16(b[12:], uint16(len(eir)))
	return append(b, eir...)
}

func TestParseDeviceFound(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		wantAddr string
		wantType AddressType
		wantRSSI int
		wantName string
		wantErr  bool
	}{
		{"BR/EDR with name", deviceFound("C0:FF:EE:00:00:01", AddrBREDR, -42, []byte{6, 0x09, 'b', 'e', 'a', 'c', 'n'}), "c0:ff:ee:00:00:01", AddrBREDR, -42, "beacn", false},
		{"LE shortened name", deviceFound("11:22:33:44:55:66", AddrLERandom, -80, []byte{2, 0x01, 0x06, 3, 0x08, 'a', 'b'}), "11:22:33:44:55:66", AddrLERandom, -80, "ab", false},
		{"no EIR", deviceFound("11:22:33:44:55:66", AddrLEPublic, 0, nil), "11:22:33:44:55:66", AddrLEPublic, 0, "", false},
		{"malformed EIR ignored", deviceFound("11:22:33:44:55:66", AddrLEPublic, -1, []byte{9, 0x09, 'x'}), "11:22:33:44:55:66", AddrLEPublic, -1, "", false},
		{"EIR length beyond packet", append(deviceFound("11:22:33:44:55:66", 0, 0, nil)[:12], 9, 0), "", 0, 0, "", true},
		{"short", []byte{1, 2, 3}, "", 0, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := parseDeviceFound(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if d.Address.String() != tt.wantAddr || d.AddressType != tt.wantType || d.RSSI != tt.wantRSSI || d.Name != tt.wantName {
				t.Errorf("got %+v", d)
			}
		})
	}
}

func TestParseEventAndIndexList(t *testing.T) {
	params := []byte{0x03, 0x00, 0x00, 2, 0, 0, 0, 5, 0}
	pkt := append(encodeCommand(evCmdComplete, NoIndex, nil)[:4], byte(len(params)), 0)
	pkt = append(pkt, params...)
	ev, err := parseEvent(pkt)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseCmdResult(ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Opcode != opReadIndexList || r.Status != 0 {
		t.Fatalf("got %+v", r)
	}
	idx, err := parseIndexList(r.Params)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != 2 || idx[0] != 0 || idx[1] != 5 {
		t.Errorf("indexes %v", idx)
	}
	if _, err := parseEvent(pkt[:len(pkt)-1]); err == nil {
		t.Error("truncated event accepted")
	}
	if _, err := parseIndexList([]byte{3, 0, 1, 0}); err == nil {
		t.Error("truncated index list accepted")
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add(append([]byte{0x12, 0, 0, 0, 20, 0}, deviceFound("C0:FF:EE:00:00:01", 0, -3, []byte{3, 9, 'a', 'b'})...))
	f.Add([]byte{1, 0, 0xff, 0xff, 5, 0, 3, 0, 0, 1, 0})
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := parseEvent(b)
		if err != nil {
			return
		}
		switch ev.Code {
		case evCmdComplete, evCmdStatus:
			if r, err := parseCmdResult(ev); err == nil {
				_, _ = parseIndexList(r.Params)
				_, _ = parseInfo(r.Params)
			}
		case evDeviceFound:
			if d, err := parseDeviceFound(ev.Data); err == nil && len(d.Address) != 6 {
				t.Fatalf("address %v", d.Address)
			}
		}
	})
}

func FuzzEIRName(f *testing.F) {
	f.Add([]byte{2, 1, 6, 4, 9, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := eirName(b); len(n) > len(b) {
			t.Fatalf("name %q longer than input", n)
		}
	})
}
