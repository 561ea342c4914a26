// Package rfkill clears soft radio blocks through /dev/rfkill: many boards
// boot with Wi-Fi or Bluetooth soft-blocked, and a blocked radio cannot be
// powered or brought up.
package rfkill

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Type is an rfkill radio type.
type Type uint8

// Radio types (enum rfkill_type).
const (
	All       Type = 0
	WLAN      Type = 1
	Bluetooth Type = 2
)

// opChangeAll changes every radio of a type (enum rfkill_operation).
const opChangeAll = 3

// event encodes struct rfkill_event (8 bytes): idx u32, type u8, op u8,
// soft u8, hard u8.
func event(t Type, soft bool) []byte {
	s := byte(0)
	if soft {
		s = 1
	}
	return []byte{0, 0, 0, 0, byte(t), opChangeAll, s, 0}
}

// Unblock clears the soft block of every radio of type t. A hard block (a
// switch) cannot be cleared: it shows up later as the radio refusing to
// power on. A missing dev means no rfkill support, hence nothing blocked.
func Unblock(dev string, t Type) error {
	if dev == "" {
		dev = "/dev/rfkill"
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rfkill: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(event(t, false)); err != nil {
		return fmt.Errorf("rfkill: unblock type %d: %w", t, err)
	}
	return nil
}
