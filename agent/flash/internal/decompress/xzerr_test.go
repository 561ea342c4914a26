package decompress

import (
	"errors"
	"os"
	"testing"
)

// TestXZFormatError: damage to an xz stream is a *FormatError whichever stage found it (the
// container parser, the LZMA2 framing, ulikunitz's decoder), said once.
func TestXZFormatError(t *testing.T) {
	multi, err := os.ReadFile("testdata/multi.xz")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"truncated":      multi[:len(multi)/2],
		"bad index":      flip(multi, len(multi)-20),
		"bad block data": flip(multi, len(multi)/3),
		"bad header":     flip(multi, 13),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := decodeAll(t, in, 2)
			if err == nil {
				t.Fatal("damaged stream decoded without an error")
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%v (%T) is not a *FormatError", err, err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x55
	return c
}
