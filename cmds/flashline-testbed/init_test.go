package main

import (
	"reflect"
	"testing"

	"github.com/flashline/flashline/agent/cmdline"
)

func TestParseSpec(t *testing.T) {
	line := `console=ttyS0 rdinit=/bin/flashline-testbed flashline.testbed="wifi-ap --ssid LINE-TEST; bt-peer --address C0:FF:EE:00:00:01 --rssi -50" quiet`
	p, err := cmdline.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	spec, ok := p.Flag(testbedParam)
	if !ok {
		t.Fatal("no flashline.testbed parameter")
	}
	got, err := parseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"wifi-ap", "--ssid", "LINE-TEST"}, {"bt-peer", "--address", "C0:FF:EE:00:00:01", "--rssi", "-50"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if cmds, err := parseSpec(""); err != nil || len(cmds) != 0 {
		t.Errorf("empty spec: %q %v", cmds, err)
	}
	if _, err := parseSpec("wifi-ap; rm -rf /"); err == nil {
		t.Error("unknown command accepted")
	}
}

func TestHCIIndex(t *testing.T) {
	for name, want := range map[string]int{"hci0": 0, "hci12": 12, "hci0:11": -1, "rfkill0": -1, "hci": -1, "hci-1": -1} {
		n, ok := hciIndex(name)
		if ok != (want >= 0) || (ok && n != want) {
			t.Errorf("hciIndex(%q) = %d %v", name, n, ok)
		}
	}
	if cmds, err := parseSpec("bt-bluez --name x"); err != nil || len(cmds) != 1 {
		t.Errorf("bt-bluez spec: %v %v", cmds, err)
	}
}

func TestDevInfoAddr(t *testing.T) {
	b := make([]byte, 92)
	copy(b[2:], "hci1")
	copy(b[10:], []byte{0x01, 0x00, 0x01, 0x01, 0xaa, 0x00})
	if a, err := devInfoAddr(b); err != nil || a != "00:AA:01:01:00:01" {
		t.Errorf("devInfoAddr = %q %v", a, err)
	}
	if _, err := devInfoAddr(make([]byte, 92)); err == nil {
		t.Error("zero address accepted")
	}
	if _, err := devInfoAddr(b[:12]); err == nil {
		t.Error("short record accepted")
	}
}
