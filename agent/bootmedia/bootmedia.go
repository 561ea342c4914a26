// Package bootmedia recognises the medium the agent booted from, so that the flash pipeline
// never overwrites it. Discovery sticks and ISOs (initramfs/mkusb) put
// flashline.bootmedia=ptuuid:<id> on the kernel command line, where <id> is the medium's
// partition table identifier as blkid prints it (PTUUID): the MBR disk signature as 8 hex
// digits, or the GPT disk GUID. A disk whose first sectors carry that identifier is the boot
// medium, whether or not the kernel calls it removable.
package bootmedia

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
)

// Param is the kernel command line parameter.
const Param = "flashline.bootmedia"

// ID identifies a boot medium.
type ID struct {
	// PTUUID is lower case: 8 hex digits (MBR) or a GUID (GPT).
	PTUUID string
}

// Parse reads the parameter's value, e.g. "ptuuid:1a2b3c4d".
func Parse(v string) (ID, error) {
	kind, val, ok := strings.Cut(strings.TrimSpace(v), ":")
	if !ok || !strings.EqualFold(kind, "ptuuid") {
		return ID{}, fmt.Errorf("%s=%q: want ptuuid:<id>", Param, v)
	}
	val = strings.ToLower(val)
	if len(val) == 8 {
		for _, r := range val {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return ID{}, fmt.Errorf("%s=%q: bad MBR disk signature", Param, v)
			}
		}
		return ID{PTUUID: val}, nil
	}
	u, err := uuid.Parse(val)
	if err != nil || len(val) != 36 {
		return ID{}, fmt.Errorf("%s=%q: want 8 hex digits or a GUID", Param, v)
	}
	return ID{PTUUID: u.String()}, nil
}

// PTUUID returns the partition table identifier of the disk r reads, "" when it has no
// partition table. A protective MBR (type 0xEE) means GPT; its header is looked for at LBA 1
// for 512- and 4096-byte sectors.
func PTUUID(r io.ReaderAt) (string, error) {
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return "", fmt.Errorf("read sector 0: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return "", nil
	}
	protective := false
	for i := 0; i < 4; i++ {
		if mbr[446+16*i+4] == 0xee {
			protective = true
		}
	}
	if protective {
		for _, ss := range []int64{512, 4096} {
			h := make([]byte, 92)
			if _, err := r.ReadAt(h, ss); err != nil {
				if errors.Is(err, io.EOF) {
					continue
				}
				return "", fmt.Errorf("read GPT header: %w", err)
			}
			if string(h[:8]) != "EFI PART" {
				continue
			}
			g := h[56:72]
			// GUIDs are stored with the first three fields little-endian.
			var b [16]byte
			binary.BigEndian.PutUint32(b[0:], binary.LittleEndian.Uint32(g[0:]))
			binary.BigEndian.PutUint16(b[4:], binary.LittleEndian.Uint16(g[4:]))
			binary.BigEndian.PutUint16(b[6:], binary.LittleEndian.Uint16(g[6:]))
			copy(b[8:], g[8:])
			return uuid.UUID(b).String(), nil
		}
	}
	sig := binary.LittleEndian.Uint32(mbr[440:])
	if sig == 0 {
		return "", nil
	}
	return fmt.Sprintf("%08x", sig), nil
}

// Is reports whether the disk r reads is the boot medium id names.
func (id ID) Is(r io.ReaderAt) (bool, error) {
	if id.PTUUID == "" {
		return false, nil
	}
	got, err := PTUUID(r)
	if err != nil {
		return false, err
	}
	return got == id.PTUUID, nil
}
