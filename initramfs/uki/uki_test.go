package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"os"
	"sort"
	"strings"
	"testing"
)

// minimalPE is a PE32+ image with one .text section, headers padded to 0x400 so that a few
// more section headers fit, and a fake COFF symbol table after its last section.
func minimalPE(t testing.TB, roomForHeaders bool) []byte {
	t.Helper()
	b := make([]byte, 0x600)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	coff := 0x84
	binary.LittleEndian.PutUint16(b[coff:], 0x8664)
	binary.LittleEndian.PutUint16(b[coff+2:], 1)
	binary.LittleEndian.PutUint32(b[coff+8:], 0x600) // symbol table right after .text
	binary.LittleEndian.PutUint32(b[coff+12:], 1)
	binary.LittleEndian.PutUint16(b[coff+16:], 240)
	binary.LittleEndian.PutUint16(b[coff+18:], 0x22)
	opt := coff + 20
	binary.LittleEndian.PutUint16(b[opt:], 0x20b)
	binary.LittleEndian.PutUint32(b[opt+16:], 0x1000) // entry
	binary.LittleEndian.PutUint64(b[opt+24:], 0)      // image base
	binary.LittleEndian.PutUint32(b[opt+32:], 0x1000) // section alignment
	binary.LittleEndian.PutUint32(b[opt+36:], 0x200)  // file alignment
	binary.LittleEndian.PutUint32(b[opt+56:], 0x2000) // size of image
	hdrs := uint32(0x400)
	if !roomForHeaders {
		hdrs = 0x200
	}
	binary.LittleEndian.PutUint32(b[opt+60:], hdrs)
	binary.LittleEndian.PutUint16(b[opt+68:], 10) // EFI application
	binary.LittleEndian.PutUint32(b[opt+108:], 16)
	sec := opt + 240
	copy(b[sec:], ".text")
	binary.LittleEndian.PutUint32(b[sec+8:], 0x10)
	binary.LittleEndian.PutUint32(b[sec+12:], 0x1000)
	binary.LittleEndian.PutUint32(b[sec+16:], 0x200)
	binary.LittleEndian.PutUint32(b[sec+20:], hdrs)
	binary.LittleEndian.PutUint32(b[sec+36:], 0x60000020)
	copy(b[hdrs:], "\xc3 text section")
	if !roomForHeaders {
		return b[:0x400]
	}
	// COFF symbol table (one 18-byte record) and an empty string table.
	return append(b, make([]byte, 18+4)...)
}

func fakeKernel(size int) []byte {
	k := bytes.Repeat([]byte{0x90}, size)
	copy(k[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(k[0x206:], 0x20f)
	return k
}

func checkPE(t *testing.T, img []byte) *pe.File {
	t.Helper()
	f, err := pe.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("output is not a PE file: %v", err)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	peOff := int(binary.LittleEndian.Uint32(img[0x3c:]))
	ckOff := peOff + 4 + 20 + 64
	if got := Checksum(img, ckOff); got != oh.CheckSum {
		t.Errorf("checksum field %#x, recomputed %#x", oh.CheckSum, got)
	}
	if f.FileHeader.PointerToSymbolTable != 0 || f.FileHeader.NumberOfSymbols != 0 {
		t.Error("stale COFF symbol table kept")
	}
	if oh.DataDirectory[4].Size != 0 {
		t.Error("old signature kept")
	}
	// Sections must not overlap in memory, ours must be aligned (the real stub's own layout is
	// its linker's business: its .sdmagic is not on a section boundary), and SizeOfImage must
	// cover them.
	ss := append([]*pe.Section(nil), f.Sections...)
	sort.Slice(ss, func(i, j int) bool { return ss[i].VirtualAddress < ss[j].VirtualAddress })
	for i := 1; i < len(ss); i++ {
		prev, cur := ss[i-1], ss[i]
		if prev.VirtualAddress+prev.VirtualSize > cur.VirtualAddress {
			t.Errorf("%s overlaps %s in memory", prev.Name, cur.Name)
		}
		ours := map[string]bool{".osrel": true, ".cmdline": true, ".initrd": true, ".linux": true}
		if ours[cur.Name] && (cur.VirtualAddress%oh.SectionAlignment != 0 || cur.Offset%oh.FileAlignment != 0) {
			t.Errorf("%s misaligned", cur.Name)
		}
	}
	last := ss[len(ss)-1]
	if oh.SizeOfImage < last.VirtualAddress+last.VirtualSize {
		t.Errorf("SizeOfImage %#x does not cover %s", oh.SizeOfImage, last.Name)
	}
	return f
}

func TestAddSectionsSynthetic(t *testing.T) {
	stub := minimalPE(t, true)
	secs := []Section{{".cmdline", []byte("console=ttyS0")}, {".initrd", bytes.Repeat([]byte("I"), 5000)}, {".linux", fakeKernel(9000)}}
	img, err := AddSections(stub, secs)
	if err != nil {
		t.Fatal(err)
	}
	f := checkPE(t, img)
	defer f.Close()
	got, err := Sections(img)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secs {
		if !bytes.Equal(got[s.Name], s.Data) {
			t.Errorf("section %s: %d bytes, want %d", s.Name, len(got[s.Name]), len(s.Data))
		}
	}
	if !bytes.HasPrefix(got[".text"], []byte("\xc3 text")) {
		t.Error("stub's own section damaged")
	}
	if !bytes.Equal(stub[:0x80], img[:0x80]) {
		t.Error("DOS header changed")
	}
}

func TestAddSectionsRefuses(t *testing.T) {
	tests := []struct {
		name string
		stub []byte
		secs []Section
		want string
	}{
		{"not PE", []byte("hello world, this is not a PE file at all, no sir, not even close.........."), nil, "no MZ"},
		{"no room", minimalPE(t, false), []Section{{".a", nil}, {".b", nil}, {".c", nil}, {".d", nil}, {".e", nil}, {".f", nil}, {".g", nil}}, "room for"},
		{"duplicate", minimalPE(t, true), []Section{{".text", []byte("x")}}, "already has"},
		{"long name", minimalPE(t, true), []Section{{".cmdline-too-long", []byte("x")}}, "1 to 8 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AddSections(tt.stub, tt.secs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	stub := minimalPE(t, true)
	if _, err := Build(Input{Stub: stub, Kernel: []byte("not a kernel at all")}); err == nil {
		t.Error("non-bzImage kernel accepted")
	}
	if _, err := Build(Input{Stub: stub, Kernel: fakeKernel(4096), Cmdline: "a\nb"}); err == nil {
		t.Error("two-line command line accepted")
	}
}

// The real stub from Debian's systemd-boot-efi (installed by scripts/setup).
func realStub(t *testing.T) []byte {
	b, err := os.ReadFile(DefaultStub)
	if err != nil {
		t.Skipf("systemd-boot-efi not installed (%v): scripts/setup installs it", err)
	}
	return b
}

func TestChecksumMatchesRealStub(t *testing.T) {
	stub := realStub(t)
	peOff := int(binary.LittleEndian.Uint32(stub[0x3c:]))
	off := peOff + 4 + 20 + 64
	if want, got := binary.LittleEndian.Uint32(stub[off:]), Checksum(stub, off); want != got {
		t.Fatalf("checksum %#x, the stub's linker wrote %#x", got, want)
	}
}

func TestBuildRealStub(t *testing.T) {
	stub := realStub(t)
	in := Input{Stub: stub, Kernel: fakeKernel(3 << 20), Initrd: bytes.Repeat([]byte{7}, 1<<20+3),
		Cmdline: " console=ttyS0,115200 flashline.server=https://10.0.0.1:8443\n", OSRelease: "ID=flashline\n"}
	img, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	f := checkPE(t, img)
	defer f.Close()
	got, _ := Sections(img)
	if string(got[".cmdline"]) != "console=ttyS0,115200 flashline.server=https://10.0.0.1:8443" {
		t.Errorf(".cmdline = %q", got[".cmdline"])
	}
	if !bytes.Equal(got[".linux"], in.Kernel) || !bytes.Equal(got[".initrd"], in.Initrd) || string(got[".osrel"]) != in.OSRelease {
		t.Error("payload sections differ from the input")
	}
	for _, s := range []string{".text", ".sbat", ".sdmagic"} {
		if _, ok := got[s]; !ok {
			t.Errorf("stub section %s lost", s)
		}
	}
	// .linux is the last section in memory.
	var lastVA uint32
	var lastName string
	for _, s := range f.Sections {
		if s.VirtualAddress >= lastVA {
			lastVA, lastName = s.VirtualAddress, s.Name
		}
	}
	if lastName != ".linux" {
		t.Errorf("last section is %s, want .linux", lastName)
	}
}

// FuzzAddSections: the stub is a build input, but a damaged file must give an error, not a
// panic or an out-of-range write.
func FuzzAddSections(f *testing.F) {
	f.Add(minimalPE(f, true))
	f.Add(minimalPE(f, false))
	f.Fuzz(func(t *testing.T, stub []byte) {
		img, err := AddSections(stub, []Section{{".cmdline", []byte("x")}})
		if err == nil && len(img) < len(".cmdline") {
			t.Fatal("tiny output")
		}
	})
}
