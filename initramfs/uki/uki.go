// Package uki assembles a unified kernel image: the systemd EFI stub with the kernel, the
// initramfs and the kernel command line added as PE sections (.linux, .initrd, .cmdline,
// .osrel), so that one EFI binary, signed once with the owner's db key, is all the firmware
// boots. Under Secure Boot the stub ignores any command line the boot loader passes and uses
// the signed .cmdline, so nobody on the line can redirect the agent to another server by
// editing the boot entry.
//
// The PE surgery is done here rather than with objcopy because it is small, exact and
// testable: section headers go into the room the stub leaves after its section table, section
// data is appended at the file alignment, the COFF symbol table and any old signature (both
// meaningless after the change) are dropped, and the PE checksum is recomputed.
package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// DefaultStub is where Debian's systemd-boot-efi package installs the x86-64 stub.
const DefaultStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// Input is what goes into a unified kernel image.
type Input struct {
	Stub      []byte // the systemd EFI stub (linuxx64.efi.stub)
	Kernel    []byte // a bzImage with an EFI handover entry (Debian's vmlinuz)
	Initrd    []byte
	Cmdline   string
	OSRelease string // shown by boot menus; optional
}

// Section is a named blob to add to a PE image.
type Section struct {
	Name string // at most 8 bytes, e.g. ".cmdline"
	Data []byte
}

// Build assembles the unified kernel image. The kernel goes last: the stub may run it in place
// and the kernel's decompressor needs room after its own end, which the loader's allocation of
// the last section's pages does not take from another section.
func Build(in Input) ([]byte, error) {
	if len(in.Stub) == 0 || len(in.Kernel) == 0 {
		return nil, errors.New("uki: stub and kernel are required")
	}
	if err := checkBzImage(in.Kernel); err != nil {
		return nil, err
	}
	cmdline := strings.TrimSpace(in.Cmdline)
	if strings.ContainsAny(cmdline, "\x00\n") {
		return nil, errors.New("uki: the command line must be one line")
	}
	var secs []Section
	if in.OSRelease != "" {
		secs = append(secs, Section{".osrel", []byte(in.OSRelease)})
	}
	secs = append(secs, Section{".cmdline", []byte(cmdline)})
	if len(in.Initrd) > 0 {
		secs = append(secs, Section{".initrd", in.Initrd})
	}
	secs = append(secs, Section{".linux", in.Kernel})
	return AddSections(in.Stub, secs)
}

// checkBzImage refuses something that is not an x86 Linux boot image early, with a message
// better than the black screen the stub would give.
func checkBzImage(k []byte) error {
	if len(k) < 0x264 || string(k[0x202:0x206]) != "HdrS" {
		return errors.New("uki: the kernel is not an x86 bzImage (no HdrS header)")
	}
	if v := binary.LittleEndian.Uint16(k[0x206:]); v < 0x20b {
		return fmt.Errorf("uki: boot protocol %#x is too old for the EFI handover (need 2.11)", v)
	}
	return nil
}

// PE layout constants (PE/COFF specification).
const (
	coffHeaderSize   = 20
	sectionHdrSize   = 40
	pe32PlusMagic    = 0x20b
	optSectionAlign  = 32
	optFileAlign     = 36
	optSizeOfInitDat = 8
	optSizeOfImage   = 56
	optSizeOfHeaders = 60
	optCheckSum      = 64
	optNumRVA        = 108
	optDataDirs      = 112
	dirSecurity      = 4
	// IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
	dataSectionFlags = 0x00000040 | 0x40000000
	// Sections we add start on page boundaries in memory whatever the stub's alignment.
	minVirtualAlign = 0x1000
)

// AddSections returns a copy of the PE32+ image with secs appended as read-only data sections.
func AddSections(image []byte, secs []Section) ([]byte, error) {
	if len(image) < 0x40 || string(image[:2]) != "MZ" {
		return nil, errors.New("uki: stub is not a PE image (no MZ)")
	}
	peOff := int(binary.LittleEndian.Uint32(image[0x3c:]))
	if peOff+4+coffHeaderSize > len(image) || string(image[peOff:peOff+4]) != "PE\x00\x00" {
		return nil, errors.New("uki: stub is not a PE image (no PE signature)")
	}
	coff := peOff + 4
	nsec := int(binary.LittleEndian.Uint16(image[coff+2:]))
	optSize := int(binary.LittleEndian.Uint16(image[coff+16:]))
	opt := coff + coffHeaderSize
	if opt+optSize > len(image) || optSize < optDataDirs || binary.LittleEndian.Uint16(image[opt:]) != pe32PlusMagic {
		return nil, errors.New("uki: stub is not a PE32+ image")
	}
	sectAlign := binary.LittleEndian.Uint32(image[opt+optSectionAlign:])
	fileAlign := binary.LittleEndian.Uint32(image[opt+optFileAlign:])
	sizeOfHeaders := binary.LittleEndian.Uint32(image[opt+optSizeOfHeaders:])
	// The PE specification's bounds: both powers of two, file alignment 512 B to 64 KiB.
	if fileAlign < 0x200 || fileAlign > 0x10000 || fileAlign&(fileAlign-1) != 0 ||
		sectAlign < fileAlign || sectAlign > 1<<20 || sectAlign&(sectAlign-1) != 0 {
		return nil, fmt.Errorf("uki: stub has invalid alignments (section %#x, file %#x)", sectAlign, fileAlign)
	}
	secTab := opt + optSize
	if secTab+nsec*sectionHdrSize > len(image) {
		return nil, errors.New("uki: stub section table is truncated")
	}

	// Where the stub's own content ends, in the file and in memory; and the lowest raw data
	// offset, which bounds the room for more section headers.
	var rawEnd, virtEnd uint32
	firstRaw := uint32(len(image))
	for i := range nsec {
		h := image[secTab+i*sectionHdrSize:]
		name := strings.TrimRight(string(h[:8]), "\x00")
		for _, s := range secs {
			if name == s.Name {
				return nil, fmt.Errorf("uki: stub already has a %s section", name)
			}
		}
		vsize, va := uint64(binary.LittleEndian.Uint32(h[8:])), uint64(binary.LittleEndian.Uint32(h[12:]))
		rsize, rptr := uint64(binary.LittleEndian.Uint32(h[16:])), uint64(binary.LittleEndian.Uint32(h[20:]))
		if va+max(vsize, rsize) >= 1<<31 || rptr+rsize > uint64(len(image)) {
			return nil, fmt.Errorf("uki: stub section %s lies outside the image", name)
		}
		virtEnd = max(virtEnd, uint32(va+max(vsize, rsize)))
		if rsize > 0 {
			rawEnd = max(rawEnd, uint32(rptr+rsize))
			firstRaw = min(firstRaw, uint32(rptr))
		}
	}
	// The headers themselves are kept even when no section has file data.
	if int(sizeOfHeaders) > len(image) {
		return nil, errors.New("uki: stub headers run past the end of the file")
	}
	rawEnd = max(rawEnd, sizeOfHeaders, uint32(secTab+nsec*sectionHdrSize))
	newTabEnd := uint32(secTab + (nsec+len(secs))*sectionHdrSize)
	if newTabEnd > firstRaw {
		return nil, fmt.Errorf("uki: stub has room for %d more section headers, need %d", (int(firstRaw)-secTab)/sectionHdrSize-nsec, len(secs))
	}

	// Keep the stub up to its last section: what follows is the COFF symbol table or an old
	// signature, both invalid once sections are added.
	out := bytes.NewBuffer(make([]byte, 0, int(rawEnd)+totalLen(secs)+len(secs)*int(fileAlign)))
	out.Write(image[:rawEnd])
	buf := out.Bytes()
	binary.LittleEndian.PutUint32(buf[coff+8:], 0)  // PointerToSymbolTable
	binary.LittleEndian.PutUint32(buf[coff+12:], 0) // NumberOfSymbols
	if n := binary.LittleEndian.Uint32(buf[opt+optNumRVA:]); n > dirSecurity && optDataDirs+(dirSecurity+1)*8 <= optSize {
		d := opt + optDataDirs + dirSecurity*8
		binary.LittleEndian.PutUint64(buf[d:], 0)
	}

	virtAlign := max(sectAlign, minVirtualAlign)
	va := alignUp(virtEnd, virtAlign)
	var initData uint32
	hdrs := make([]byte, 0, len(secs)*sectionHdrSize)
	for _, s := range secs {
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return nil, fmt.Errorf("uki: section name %q must be 1 to 8 bytes", s.Name)
		}
		if uint64(len(s.Data)) > 1<<31 {
			return nil, fmt.Errorf("uki: section %s is too large", s.Name)
		}
		pad := int(alignUp(uint32(out.Len()), fileAlign)) - out.Len()
		out.Write(make([]byte, pad))
		ptr := uint32(out.Len())
		out.Write(s.Data)
		rsize := alignUp(uint32(len(s.Data)), fileAlign)
		out.Write(make([]byte, int(rsize)-len(s.Data)))

		var h [sectionHdrSize]byte
		copy(h[:8], s.Name)
		binary.LittleEndian.PutUint32(h[8:], uint32(len(s.Data))) // VirtualSize: the stub reads the length from it
		binary.LittleEndian.PutUint32(h[12:], va)
		binary.LittleEndian.PutUint32(h[16:], rsize)
		binary.LittleEndian.PutUint32(h[20:], ptr)
		binary.LittleEndian.PutUint32(h[36:], dataSectionFlags)
		hdrs = append(hdrs, h[:]...)
		initData += rsize
		va = alignUp(va+uint32(len(s.Data)), virtAlign)
	}

	buf = out.Bytes()
	copy(buf[secTab+nsec*sectionHdrSize:], hdrs)
	binary.LittleEndian.PutUint16(buf[coff+2:], uint16(nsec+len(secs)))
	binary.LittleEndian.PutUint32(buf[opt+optSizeOfInitDat:], binary.LittleEndian.Uint32(buf[opt+optSizeOfInitDat:])+initData)
	binary.LittleEndian.PutUint32(buf[opt+optSizeOfImage:], alignUp(va, sectAlign))
	if newTabEnd > sizeOfHeaders {
		binary.LittleEndian.PutUint32(buf[opt+optSizeOfHeaders:], alignUp(newTabEnd, fileAlign))
	}
	binary.LittleEndian.PutUint32(buf[opt+optCheckSum:], 0)
	binary.LittleEndian.PutUint32(buf[opt+optCheckSum:], Checksum(buf, opt+optCheckSum))
	return buf, nil
}

// Checksum is the PE image checksum (the algorithm of Windows' CheckSumMappedFile): a 16-bit
// one's-complement style sum of the file with the checksum field skipped, plus the file length.
func Checksum(b []byte, checksumOff int) uint32 {
	var sum uint64
	for i := 0; i+1 < len(b); i += 2 {
		if i == checksumOff || i == checksumOff+2 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(b[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}

// Sections returns the named sections of a PE image (e.g. to check what a UKI carries).
func Sections(image []byte) (map[string][]byte, error) {
	f, err := pe.NewFile(bytes.NewReader(image))
	if err != nil {
		return nil, fmt.Errorf("parse PE: %w", err)
	}
	defer f.Close()
	m := map[string][]byte{}
	for _, s := range f.Sections {
		d, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("section %s: %w", s.Name, err)
		}
		// Data returns the raw, file-aligned size; the content length is the virtual size.
		if int(s.VirtualSize) < len(d) {
			d = d[:s.VirtualSize]
		}
		m[s.Name] = d
	}
	return m, nil
}

func alignUp(v, a uint32) uint32 { return (v + a - 1) / a * a }

func totalLen(secs []Section) int {
	n := 0
	for _, s := range secs {
		n += len(s.Data)
	}
	return n
}
