package xzformat

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestUvarint(t *testing.T) {
	tests := []struct {
		in  []byte
		v   uint64
		n   int
		err error
	}{
		{[]byte{0x00}, 0, 1, nil},
		{[]byte{0x7f, 0xff}, 127, 1, nil},
		{[]byte{0x80, 0x01}, 128, 2, nil},
		{[]byte{0x80, 0x00}, 0, 0, ErrNonMinimal},
		{[]byte{0x80}, 0, 0, ErrTruncated},
		{nil, 0, 0, ErrTruncated},
		{bytes.Repeat([]byte{0xff}, 9), 0, 0, ErrOverflow},
		{append(bytes.Repeat([]byte{0xff}, 8), 0x7f), 1<<63 - 1, 9, nil}, // the largest
	}
	for _, tt := range tests {
		v, n, err := Uvarint(tt.in)
		if v != tt.v || n != tt.n || !errors.Is(err, tt.err) {
			t.Errorf("Uvarint(% x) = %d, %d, %v; want %d, %d, %v", tt.in, v, n, err, tt.v, tt.n, tt.err)
		}
		rv, rerr := ReadUvarint(bytes.NewReader(tt.in))
		want := tt.err
		if want == ErrTruncated {
			want = io.EOF // the reader's own error
		}
		if rv != tt.v || !errors.Is(rerr, want) {
			t.Errorf("ReadUvarint(% x) = %d, %v; want %d, %v", tt.in, rv, rerr, tt.v, want)
		}
	}
}

func FuzzUvarint(f *testing.F) {
	f.Add([]byte{0x80, 0x01})
	f.Add(bytes.Repeat([]byte{0xff}, 10))
	f.Fuzz(func(t *testing.T, p []byte) {
		v, n, err := Uvarint(p)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes: the encoding is minimal.
		if got := AppendUvarint(nil, v); !bytes.Equal(got, p[:n]) {
			t.Fatalf("% x decoded to %d, which encodes as % x", p[:n], v, got)
		}
	})
}
