package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseBearer(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"Bearer abc-DEF_123", "abc-DEF_123", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc==", "abc==", true},
		{"Bearer a+b/c~.d", "a+b/c~.d", true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic dXNlcjpwdw==", "", false},
		{"Bearerabc", "", false},
		{"Bearer a b", "", false},
		{"Bearer a=b", "", false},
		{"Bearer ab\x00", "", false},
		{"Bearer é", "", false},
		{"Bearer " + strings.Repeat("a", 513), "", false},
	} {
		got, ok := ParseBearer(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseBearer(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a==", "Basic x", "", "Bearer  a b", "Bearer =="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok, ok := ParseBearer(v)
		if !ok {
			if tok != "" {
				t.Fatalf("refused %q but returned token %q", v, tok)
			}
			return
		}
		if tok == "" || len(tok) > maxTokenLen || strings.ContainsAny(tok, " \t\r\n") {
			t.Fatalf("accepted %q with token %q", v, tok)
		}
		// What a client writes is read back as the same token.
		if again, ok := ParseBearer(BearerHeader(tok)); !ok || again != tok {
			t.Fatalf("token %q does not round-trip: %q %v", tok, again, ok)
		}
	})
}

func TestNewRunSecret(t *testing.T) {
	a, err := NewRunSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewRunSecret()
	if a == b || len(a) != 43 {
		t.Fatalf("secrets %q %q: want two different 43-character secrets", a, b)
	}
	if tok, ok := ParseBearer(BearerHeader(a)); !ok || tok != a {
		t.Fatalf("a run secret is not a valid bearer token: %q", a)
	}
	if HashRunSecret(a) == HashRunSecret(b) || len(HashRunSecret(a)) != 64 {
		t.Fatal("hashes of different secrets collide or are not hex SHA-256")
	}
}

// The agent hashes its own struct; the server hashes what it decoded from the hello. They
// must agree whatever the inventory holds, and differ when the hardware differs.
func TestInventoryHashAgreesAcrossTheWire(t *testing.T) {
	invs := []Inventory{
		{},
		{DMI: DMI{Serial: "GMBOX-1", Product: "GM-Box 3"}, Modules: []string{"wifi", "lte"}, MemoryBytes: 1 << 33},
		// Invalid UTF-8 from a sloppy firmware, HTML characters, a real U+FFFD.
		{DMI: DMI{Serial: "bad\xff\xfeserial", Vendor: "<A&B>", Product: "\ufffd"}},
	}
	for _, inv := range invs {
		mine, err := InventoryHash(inv)
		if err != nil {
			t.Fatal(err)
		}
		wire, _ := json.Marshal(Hello{Inventory: inv})
		var h Hello
		if err := json.Unmarshal(wire, &h); err != nil {
			t.Fatal(err)
		}
		theirs, _ := InventoryHash(h.Inventory)
		if mine != theirs {
			t.Errorf("inventory %+v: agent hash %s, server hash %s", inv, mine, theirs)
		}
	}
	a, _ := InventoryHash(invs[1])
	other := invs[1]
	other.Modules = []string{"wifi"}
	b, _ := InventoryHash(other)
	if a == b {
		t.Fatal("inventories with other module lists hash the same")
	}
}
