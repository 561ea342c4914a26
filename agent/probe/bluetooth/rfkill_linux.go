package bluetooth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// rfkill event layout (struct rfkill_event, 8 bytes): idx u32, type u8, op
// u8, soft u8, hard u8.
const (
	rfkillTypeBluetooth = 2
	rfkillOpChangeAll   = 3
)

// Unblock clears the soft rfkill block of every Bluetooth radio. A hard block
// (a switch) cannot be cleared and shows up later as "blocked by rfkill".
// A missing /dev/rfkill means no rfkill support, hence nothing to unblock.
func Unblock(dev string) error {
	if dev == "" {
		dev = "/dev/rfkill"
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rfkill unblock: %w", err)
	}
	defer f.Close()
	ev := []byte{0, 0, 0, 0, rfkillTypeBluetooth, rfkillOpChangeAll, 0, 0}
	if _, err := f.Write(ev); err != nil {
		return fmt.Errorf("rfkill unblock Bluetooth: %w", err)
	}
	return nil
}
