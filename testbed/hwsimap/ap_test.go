package hwsimap

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// fakeNL80211 records nl80211 commands and answers GET_INTERFACE.
type fakeNL80211 struct {
	mu   sync.Mutex
	cmds []genetlink.Message
}

var family = genetlink.Family{ID: 0x1c, Version: 1, Name: unix.NL80211_GENL_NAME}

func (f *fakeNL80211) conn(t *testing.T) *genetlink.Conn {
	return genltest.Dial(genltest.ServeFamily(family, func(greq genetlink.Message, _ netlink.Message) ([]genetlink.Message, error) {
		f.mu.Lock()
		f.cmds = append(f.cmds, greq)
		f.mu.Unlock()
		if greq.Header.Command == unix.NL80211_CMD_GET_INTERFACE {
			ae := netlink.NewAttributeEncoder()
			ae.Uint32(unix.NL80211_ATTR_IFINDEX, 7)
			ae.String(unix.NL80211_ATTR_IFNAME, "wlan1")
			ae.Bytes(unix.NL80211_ATTR_MAC, net.HardwareAddr{2, 0, 0, 0, 1, 0})
			ae.Uint32(unix.NL80211_ATTR_WIPHY, 1)
			ae.Uint32(unix.NL80211_ATTR_IFTYPE, unix.NL80211_IFTYPE_STATION)
			b, err := ae.Encode()
			if err != nil {
				t.Fatal(err)
			}
			return []genetlink.Message{{Data: b}}, nil
		}
		return nil, nil
	}))
}

func (f *fakeNL80211) byCommand(cmd uint8) []map[uint16][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[uint16][]byte
	for _, m := range f.cmds {
		if m.Header.Command != cmd {
			continue
		}
		attrs, _ := netlink.UnmarshalAttributes(m.Data)
		a := map[uint16][]byte{}
		for _, at := range attrs {
			a[at.Type] = at.Data
		}
		out = append(out, a)
	}
	return out
}

type links struct{ calls []bool }

func (l *links) SetUp(_ int, up bool) error { l.calls = append(l.calls, up); return nil }

func startFake(t *testing.T, cfg Config) (*AP, *fakeNL80211, *links) {
	t.Helper()
	ctl, frames := &fakeNL80211{}, &fakeNL80211{}
	l := &links{}
	a, err := Start(context.Background(), ctl.conn(t), frames.conn(t), l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, ctl, l
}

func TestStartConfiguresAPAndBeacon(t *testing.T) {
	ctl, frames := &fakeNL80211{}, &fakeNL80211{}
	l := &links{}
	a, err := Start(context.Background(), ctl.conn(t), frames.conn(t), l, Config{SSID: "LINE-TEST", Frequency: 2437})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if len(l.calls) != 2 || l.calls[0] || !l.calls[1] {
		t.Errorf("link calls %v, want down then up", l.calls)
	}
	set := ctl.byCommand(unix.NL80211_CMD_SET_INTERFACE)
	if len(set) != 1 || binary.NativeEndian.Uint32(set[0][unix.NL80211_ATTR_IFTYPE]) != unix.NL80211_IFTYPE_AP {
		t.Fatalf("SET_INTERFACE %v", set)
	}
	regs := frames.byCommand(unix.NL80211_CMD_REGISTER_FRAME)
	if len(regs) != 6 {
		t.Errorf("%d frame registrations, want 6", len(regs))
	}
	starts := ctl.byCommand(unix.NL80211_CMD_START_AP)
	if len(starts) != 1 {
		t.Fatalf("%d START_AP", len(starts))
	}
	s := starts[0]
	if string(s[unix.NL80211_ATTR_SSID]) != "LINE-TEST" || binary.NativeEndian.Uint32(s[unix.NL80211_ATTR_WIPHY_FREQ]) != 2437 {
		t.Errorf("START_AP attrs %v", s)
	}
	if _, ok := s[unix.NL80211_ATTR_SOCKET_OWNER]; !ok {
		t.Error("AP not tied to its socket")
	}
	head := s[unix.NL80211_ATTR_BEACON_HEAD]
	f, err := parseFrame(head)
	if err != nil || f.Subtype != fcBeacon || f.BSSID.String() != "02:00:00:00:01:00" || f.DA.String() != "ff:ff:ff:ff:ff:ff" {
		t.Fatalf("beacon head %x: %+v %v", head, f, err)
	}
	ies := elements(f.Body[12:])
	if string(ies[ieSSID]) != "LINE-TEST" || !bytes.Equal(ies[ieDSParams], []byte{6}) || len(ies[ieRates]) == 0 {
		t.Errorf("beacon IEs %v", ies)
	}
}

func mgmt(fc byte, sa net.HardwareAddr, body []byte) []byte {
	return append(mgmtHeader(fc, net.HardwareAddr{2, 0, 0, 0, 1, 0}, sa, net.HardwareAddr{2, 0, 0, 0, 1, 0}), body...)
}

func TestHandleJoin(t *testing.T) {
	a, ctl, _ := startFake(t, Config{SSID: "LINE-TEST"})
	sta := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	// Wildcard probe request, then one for another SSID (ignored).
	if err := a.handle(mgmt(fcProbeReq, sta, ie(ieSSID, nil))); err != nil {
		t.Fatal(err)
	}
	if err := a.handle(mgmt(fcProbeReq, sta, ie(ieSSID, []byte("OTHER")))); err != nil {
		t.Fatal(err)
	}
	// Open system authentication, sequence 1.
	if err := a.handle(mgmt(fcAuth, sta, []byte{0, 0, 1, 0, 0, 0})); err != nil {
		t.Fatal(err)
	}
	assoc := []byte{0x01, 0x04, 10, 0}
	assoc = append(assoc, ie(ieSSID, []byte("LINE-TEST"))...)
	assoc = append(assoc, ie(ieRates, []byte{0x82, 0x84, 0x0c})...)
	if err := a.handle(mgmt(fcAssocReq, sta, assoc)); err != nil {
		t.Fatal(err)
	}

	sent := ctl.byCommand(unix.NL80211_CMD_FRAME)
	if len(sent) != 3 {
		t.Fatalf("%d frames sent, want probe response, auth and assoc responses", len(sent))
	}
	var got []byte
	for _, s := range sent {
		f, err := parseFrame(s[unix.NL80211_ATTR_FRAME])
		if err != nil {
			t.Fatal(err)
		}
		if f.DA.String() != sta.String() {
			t.Errorf("frame 0x%02x to %s", f.Subtype, f.DA)
		}
		got = append(got, f.Subtype)
		switch f.Subtype {
		case fcAuth:
			if status := binary.LittleEndian.Uint16(f.Body[4:]); status != 0 || binary.LittleEndian.Uint16(f.Body[2:]) != 2 {
				t.Errorf("auth response %x", f.Body)
			}
		case fcAssocResp:
			if status, aid := binary.LittleEndian.Uint16(f.Body[2:]), binary.LittleEndian.Uint16(f.Body[4:]); status != 0 || aid != 0xc001 {
				t.Errorf("assoc response status %d aid %#x", status, aid)
			}
		}
	}
	if !bytes.Equal(got, []byte{fcProbeResp, fcAuth, fcAssocResp}) {
		t.Errorf("sent %x", got)
	}
	stas := ctl.byCommand(unix.NL80211_CMD_NEW_STATION)
	if len(stas) != 1 {
		t.Fatalf("%d NEW_STATION", len(stas))
	}
	s := stas[0]
	if !bytes.Equal(s[unix.NL80211_ATTR_MAC], sta) || !bytes.Equal(s[unix.NL80211_ATTR_STA_SUPPORTED_RATES], []byte{2, 4, 12}) ||
		binary.NativeEndian.Uint16(s[unix.NL80211_ATTR_STA_AID]) != 1 || binary.NativeEndian.Uint16(s[unix.NL80211_ATTR_STA_LISTEN_INTERVAL]) != 10 {
		t.Errorf("NEW_STATION %v", s)
	}
	if !bytes.Equal(s[unix.NL80211_ATTR_STA_FLAGS2], staFlagUpdate(2, 2)) {
		t.Errorf("station flags %x, want authorized", s[unix.NL80211_ATTR_STA_FLAGS2])
	}
	// Leaving removes the station.
	if err := a.handle(mgmt(fcDeauth, sta, []byte{3, 0})); err != nil {
		t.Fatal(err)
	}
	if n := len(ctl.byCommand(unix.NL80211_CMD_DEL_STATION)); n != 1 {
		t.Errorf("%d DEL_STATION", n)
	}
}

func TestHandleRefusals(t *testing.T) {
	a, ctl, _ := startFake(t, Config{SSID: "LINE-TEST"})
	sta := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	_ = a.handle(mgmt(fcAuth, sta, []byte{1, 0, 1, 0, 0, 0})) // shared key
	assoc := append([]byte{0x01, 0x04, 10, 0}, ie(ieSSID, []byte("WRONG"))...)
	_ = a.handle(mgmt(fcAssocReq, sta, assoc))
	sent := ctl.byCommand(unix.NL80211_CMD_FRAME)
	if len(sent) != 2 {
		t.Fatalf("%d frames", len(sent))
	}
	auth, _ := parseFrame(sent[0][unix.NL80211_ATTR_FRAME])
	if binary.LittleEndian.Uint16(auth.Body[4:]) != statusUnsupportedAlg {
		t.Errorf("shared-key auth answered %x", auth.Body)
	}
	resp, _ := parseFrame(sent[1][unix.NL80211_ATTR_FRAME])
	if binary.LittleEndian.Uint16(resp.Body[2:]) == 0 {
		t.Error("association with a wrong SSID accepted")
	}
	if n := len(ctl.byCommand(unix.NL80211_CMD_NEW_STATION)); n != 0 {
		t.Errorf("%d stations added", n)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{SSID: ""}, {SSID: "this-ssid-is-far-too-long-for-802.11"}, {SSID: "x", Frequency: 5000}} {
		ctl, frames := &fakeNL80211{}, &fakeNL80211{}
		if _, err := Start(context.Background(), ctl.conn(t), frames.conn(t), &links{}, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func FuzzFrames(f *testing.F) {
	f.Add(mgmt(fcAssocReq, net.HardwareAddr{1, 2, 3, 4, 5, 6}, append([]byte{1, 0, 10, 0}, ie(ieSSID, []byte("x"))...)))
	f.Add(mgmt(fcReassocReq, net.HardwareAddr{1, 2, 3, 4, 5, 6}, []byte{1, 0, 10, 0, 1, 2, 3, 4, 5, 6, 0, 40}))
	f.Add([]byte{0x40, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFrame(b)
		if err != nil {
			return
		}
		for id, v := range elements(fr.Body) {
			if len(v) > 255 {
				t.Fatalf("element %d of %d bytes", id, len(v))
			}
		}
		_, _ = parseAssocRequest(fr.Body, fr.Subtype == fcReassocReq)
	})
}
