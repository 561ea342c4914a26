package evdev

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestKeyCode(t *testing.T) {
	for name, want := range map[string]uint16{"KEY_POWER": 116, "key_power": 116, "BTN_0": 0x100, "0x74": 116, "116": 116} {
		if got, ok := KeyCode(name); !ok || got != want {
			t.Errorf("KeyCode(%q) = %d, %v", name, got, ok)
		}
	}
	for _, bad := range []string{"KEY_POWR", "", "0x1000"} {
		if _, ok := KeyCode(bad); ok {
			t.Errorf("KeyCode(%q) ok", bad)
		}
	}
	if KeyName(116) != "KEY_POWER" || KeyName(28) != "KEY_ENTER" {
		t.Errorf("KeyName: %s %s", KeyName(116), KeyName(28))
	}
}

func TestParseBitmap(t *testing.T) {
	// The ACPI power button: one bit, KEY_POWER (116 = word 1 bit 52 on 64-bit).
	b, err := ParseBitmap("10000000000000 0", 64)
	if err != nil || !b.Has(116) || b.Has(115) || len(b.Codes()) != 1 {
		t.Fatalf("bitmap %v %v codes %v", b, err, b.Codes())
	}
	// The same on a 32-bit kernel: 116 = word 3 bit 20.
	b, err = ParseBitmap("100000 0 0 0", 32)
	if err != nil || !b.Has(116) || len(b.Codes()) != 1 {
		t.Fatalf("32-bit bitmap %v %v codes %v", b, err, b.Codes())
	}
	if _, err := ParseBitmap("zz", 64); err == nil {
		t.Error("bad bitmap parsed")
	}
}

func TestEventRoundTrip(t *testing.T) {
	ev := Event{Time: time.Unix(1700000000, 123456000), Type: EvKey, Code: 116, Value: Press}
	b := AppendEvent(nil, ev)
	if len(b) != EventSize {
		t.Fatalf("record of %d bytes, want %d", len(b), EventSize)
	}
	got, err := ParseEvent(b)
	if err != nil || got.Type != ev.Type || got.Code != ev.Code || got.Value != ev.Value || !got.Time.Equal(ev.Time) {
		t.Errorf("ParseEvent = %+v %v", got, err)
	}
	// 32-bit layout: 16 bytes.
	b32 := []byte{1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 116, 0, 0, 0, 0, 0}
	if got, err := parseEvent(b32, 4); err != nil || got.Code != 116 || got.Value != Release {
		t.Errorf("32-bit = %+v %v", got, err)
	}
	if _, err := ParseEvent(b[:10]); err == nil {
		t.Error("short record parsed")
	}
}

func TestReadPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	d := FromFile(r)
	defer d.Close()
	go func() {
		time.Sleep(50 * time.Millisecond)
		var b []byte
		b = AppendEvent(b, Event{Type: EvKey, Code: 116, Value: Press})
		b = AppendEvent(b, Event{Type: EvSyn})
		w.Write(b)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := d.Read(ctx)
	if err != nil || ev.Code != 116 || ev.Value != Press {
		t.Fatalf("Read = %+v %v", ev, err)
	}
	if ev, err := d.Read(ctx); err != nil || ev.Type != EvSyn {
		t.Fatalf("second Read = %+v %v", ev, err)
	}
	// Cancellation ends a Read that has nothing to read.
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, ccancel)
	if _, err := d.Read(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Read = %v", err)
	}
	// KeyState on something that is not an evdev device fails rather than lying.
	if _, err := d.KeyState(); err == nil {
		t.Error("KeyState on a pipe succeeded")
	}
}

func TestList(t *testing.T) {
	sys := t.TempDir()
	for _, n := range []struct{ node, name, keys string }{{"event10", "gpio-keys", "10000000000000 0"}, {"event2", "AT Translated Set 2 keyboard", "402000000 3803078f800d001 feffffdfffefffff fffffffffffffffe"}} {
		d := filepath.Join(sys, "class", "input", n.node, "device", "capabilities")
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "key"), []byte(n.keys+"\n"), 0o644)
		os.WriteFile(filepath.Join(sys, "class", "input", n.node, "device", "name"), []byte(n.name+"\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(sys, "class", "input", "input3"), 0o755)
	infos, err := List(sys, "/dev")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Node != "event2" || infos[1].Path != "/dev/input/event10" || !infos[1].Keys.Has(116) || !infos[0].Keys.Has(28) {
		t.Fatalf("List = %+v", infos)
	}
}

func FuzzParseBitmap(f *testing.F) {
	f.Add("10000000000000 0")
	f.Add("402000000 3803078f800d001 feffffdfffefffff fffffffffffffffe")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBitmap(s, 64)
		if err != nil {
			return
		}
		for _, c := range b.Codes() {
			if !b.Has(c) {
				t.Fatalf("code %d listed but not set", c)
			}
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	f.Add(AppendEvent(nil, Event{Type: EvKey, Code: 116, Value: 1}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvent(b)
		if err == nil && len(b) < EventSize {
			t.Fatalf("short record parsed: %+v", ev)
		}
	})
}
