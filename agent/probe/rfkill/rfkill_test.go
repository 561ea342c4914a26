package rfkill

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestUnblockWritesChangeAll(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "rfkill")
	if err := os.WriteFile(dev, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Unblock(dev, Bluetooth); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dev)
	if want := []byte{0, 0, 0, 0, 2, 3, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("wrote % x, want % x", got, want)
	}
	if err := Unblock(filepath.Join(t.TempDir(), "missing"), WLAN); err != nil {
		t.Errorf("missing device: %v", err)
	}
}
