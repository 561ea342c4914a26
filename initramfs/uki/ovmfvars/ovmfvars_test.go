package ovmfvars

import (
	"bytes"
	"encoding/pem"
	"os"
	"testing"
	"time"
)

const (
	emptyVars    = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	snakeoilVars = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
	snakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("%v (package ovmf, installed by scripts/setup)", err)
	}
	return b
}

func TestGUID(t *testing.T) {
	const s = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	g := MustGUID(s)
	if g.String() != s {
		t.Fatalf("round trip %s", g)
	}
	if g[0] != 0x61 || g[3] != 0x8b || g[4] != 0xca || g[8] != 0xaa {
		t.Fatalf("byte order % x", g)
	}
	for _, bad := range []string{"", "8be4df61-93ca-11d2-aa0d-00e098032b8", "zzzzzzzz-93ca-11d2-aa0d-00e098032b8c"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Enrolling the snakeoil certificate into Debian's empty store must reproduce the key
// variables of Debian's own snakeoil store byte for byte: the format is then what OVMF reads.
func TestEnrollMatchesDebianSnakeoil(t *testing.T) {
	empty, ref, certPEM := read(t, emptyVars), read(t, snakeoilVars), read(t, snakeoilCert)
	refVars, err := Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	pk, ok := Lookup(refVars, "PK", GlobalVariable)
	if !ok {
		t.Fatal("no PK in the snakeoil store")
	}
	kek, _ := Lookup(refVars, "KEK", GlobalVariable)
	var pkOwner, owner GUID
	copy(pkOwner[:], pk.Data[28:44])
	copy(owner[:], kek.Data[28:44])
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		t.Fatal("snakeoil certificate is not PEM")
	}
	if vars, _ := Parse(empty); len(vars) != 0 {
		t.Fatalf("the empty template has %d variables", len(vars))
	}

	out, err := EnrollSecureBoot(empty, Keys{PK: blk.Bytes, KEK: blk.Bytes, DB: blk.Bytes, Owner: owner, PKOwner: pkOwner}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(empty) {
		t.Fatalf("store size changed %d -> %d", len(empty), len(out))
	}
	got, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		name string
		guid GUID
	}{{"PK", GlobalVariable}, {"KEK", GlobalVariable}, {"db", ImageSecurityDB}, {"SecureBootEnable", SecureBootEnableVar}, {"CustomMode", CustomModeVar}, {"VendorKeysNv", VendorKeysVar}} {
		r, _ := Lookup(refVars, want.name, want.guid)
		g, ok := Lookup(got, want.name, want.guid)
		if !ok {
			t.Errorf("%s not enrolled", want.name)
			continue
		}
		if !bytes.Equal(g.Data, r.Data) || g.Attr != r.Attr {
			t.Errorf("%s: attr %#x data %d bytes; Debian's store has attr %#x, %d bytes", want.name, g.Attr, len(g.Data), r.Attr, len(r.Data))
		}
	}
	// The firmware volume header and everything outside the store are untouched.
	start, end, _ := store(empty)
	if !bytes.Equal(out[:start], empty[:start]) || !bytes.Equal(out[end:], empty[end:]) {
		t.Error("bytes outside the variable store changed")
	}
	if _, err := EnrollSecureBoot(out, Keys{PK: blk.Bytes, KEK: blk.Bytes, DB: blk.Bytes}, time.Now()); err == nil {
		t.Error("enrolled twice into the same store")
	}
}

func TestRefusesGarbage(t *testing.T) {
	if _, err := Parse(make([]byte, 4096)); err == nil {
		t.Error("zeros parsed as a store")
	}
	if _, err := EnrollSecureBoot([]byte("tiny"), Keys{PK: []byte{1}, KEK: []byte{1}, DB: []byte{1}}, time.Now()); err == nil {
		t.Error("tiny file accepted")
	}
}

// FuzzParse: a store file is an input the test harness reads; garbage must be an error.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(snakeoilVars); err == nil {
		f.Add(b[:0x4000])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(b)
		_, _ = Append(b, Var{Name: "x", Data: []byte{1}})
	})
}
