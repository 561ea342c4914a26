// Package ovmfvars enrolls Secure Boot keys into an OVMF variable store file offline, so that
// a QEMU test can boot with Secure Boot on and the test's own PK, KEK and db: the firmware
// then boots only EFI binaries signed with the test db key. Debian 12 ships OVMF with a
// "snakeoil" store (a published test key) and Microsoft's keys, but no tool to put custom keys
// into a store file (virt-firmware's virt-fw-vars is not packaged; efitools' efi-updatevar
// only writes a running system's efivarfs), so this package writes the few records itself.
//
// The store is edk2's authenticated variable format inside a firmware volume
// (OVMF_VARS_4M.fd): a header per variable (StartId 0x55AA, state, attributes, monotonic
// count, EFI_TIME, public key index, name and data sizes, vendor GUID), the UTF-16 name and
// the data, each record 4-byte aligned. Variables are appended after the last record, in the
// erased (0xFF) space; the firmware volume's header checksum does not cover the store.
package ovmfvars

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// GUID is an EFI GUID in its in-memory (mixed-endian) byte order.
type GUID [16]byte

// MustGUID parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"; it panics on a malformed constant.
func MustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// ParseGUID parses the textual form of a GUID.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	h := strings.ReplaceAll(s, "-", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 16 || len(s) != 36 {
		return g, fmt.Errorf("bad GUID %q", s)
	}
	// The first three fields are little-endian in memory.
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g, nil
}

func (g GUID) String() string {
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%x-%x", g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8:10], g[10:])
}

// GUIDs and attributes from the UEFI specification and edk2.
var (
	GlobalVariable      = MustGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c") // PK, KEK
	ImageSecurityDB     = MustGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f") // db, dbx
	SecureBootEnableVar = MustGUID("f0a30bc7-af08-4556-99c4-001009c93a44") // edk2: SecureBootEnable
	CustomModeVar       = MustGUID("c076ec0c-7028-4399-a072-71ee5c448b9f") // edk2: CustomMode
	VendorKeysVar       = MustGUID("9073e4e0-60ec-4b6e-9903-4c223c260f3c") // edk2: VendorKeysNv
	CertX509            = MustGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072") // EFI_CERT_X509_GUID
	authVarStore        = MustGUID("aaf32c78-947b-439a-a180-2e144ec37792") // gEfiAuthenticatedVariableGuid
)

// Variable attributes.
const (
	AttrNonVolatile   = 0x01
	AttrBootService   = 0x02
	AttrRuntime       = 0x04
	AttrTimeBasedAuth = 0x20
	authAttrs         = AttrNonVolatile | AttrBootService | AttrRuntime | AttrTimeBasedAuth
)

const (
	startID       = 0x55aa
	stateAdded    = 0x3f
	headerSize    = 60
	storeHdrSize  = 28
	fvSignatureAt = 40
)

// Var is one variable.
type Var struct {
	Name string
	GUID GUID
	Attr uint32
	Time time.Time // for time-based authenticated variables; zero otherwise
	Data []byte
}

// store locates the variable store inside a firmware volume image.
func store(fd []byte) (start, end int, err error) {
	if len(fd) < 0x48+storeHdrSize || string(fd[fvSignatureAt:fvSignatureAt+4]) != "_FVH" {
		return 0, 0, errors.New("not an OVMF variable store (no _FVH firmware volume)")
	}
	hlen := int(binary.LittleEndian.Uint16(fd[48:]))
	if hlen < 0x48 || hlen+storeHdrSize > len(fd) {
		return 0, 0, errors.New("firmware volume header length out of range")
	}
	if GUID(fd[hlen:hlen+16]) != authVarStore {
		return 0, 0, fmt.Errorf("variable store is %s, want the authenticated format", GUID(fd[hlen:hlen+16]))
	}
	size := int(binary.LittleEndian.Uint32(fd[hlen+16:]))
	if size < storeHdrSize || hlen+size > len(fd) {
		return 0, 0, errors.New("variable store size out of range")
	}
	return hlen + storeHdrSize, hlen + size, nil
}

// walk calls fn for each record and returns the offset after the last one.
func walk(fd []byte, fn func(off int, state byte, v Var)) (int, error) {
	off, end, err := store(fd)
	if err != nil {
		return 0, err
	}
	for off+headerSize <= end && binary.LittleEndian.Uint16(fd[off:]) == startID {
		h := fd[off:]
		nameSize := int(binary.LittleEndian.Uint32(h[36:]))
		dataSize := int(binary.LittleEndian.Uint32(h[40:]))
		if nameSize < 0 || dataSize < 0 || nameSize > end || dataSize > end || off+headerSize+nameSize+dataSize > end {
			return 0, fmt.Errorf("variable record at %#x runs past the store", off)
		}
		v := Var{
			Attr: binary.LittleEndian.Uint32(h[4:]),
			GUID: GUID(h[44:60]),
			Name: decodeName(h[headerSize : headerSize+nameSize]),
			Data: h[headerSize+nameSize : headerSize+nameSize+dataSize],
		}
		if fn != nil {
			fn(off, h[2], v)
		}
		off = align4(off + headerSize + nameSize + dataSize)
	}
	return off, nil
}

// Parse returns the live variables of a store.
func Parse(fd []byte) ([]Var, error) {
	var vars []Var
	_, err := walk(fd, func(_ int, state byte, v Var) {
		if state == stateAdded {
			vars = append(vars, v)
		}
	})
	return vars, err
}

// Lookup returns the live variable name in guid's namespace.
func Lookup(vars []Var, name string, guid GUID) (Var, bool) {
	for _, v := range vars {
		if v.Name == name && v.GUID == guid {
			return v, true
		}
	}
	return Var{}, false
}

// Append returns a copy of the store with vars added. It refuses to shadow a live variable of
// the same name: start from an empty template (OVMF_VARS_4M.fd).
func Append(fd []byte, vars ...Var) ([]byte, error) {
	live, err := Parse(fd)
	if err != nil {
		return nil, err
	}
	for _, v := range vars {
		if _, ok := Lookup(live, v.Name, v.GUID); ok {
			return nil, fmt.Errorf("variable %s already set: start from an empty variable store", v.Name)
		}
	}
	out := bytes.Clone(fd)
	off, err := walk(out, nil)
	if err != nil {
		return nil, err
	}
	_, end, _ := store(out)
	for _, v := range vars {
		rec := record(v)
		if off+len(rec) > end {
			return nil, errors.New("variable store is full")
		}
		for _, c := range out[off : off+len(rec)] {
			if c != 0xff {
				return nil, fmt.Errorf("variable store is not erased at %#x", off)
			}
		}
		copy(out[off:], rec)
		off = align4(off + len(rec))
	}
	return out, nil
}

func record(v Var) []byte {
	name := encodeName(v.Name)
	h := make([]byte, headerSize, headerSize+len(name)+len(v.Data))
	binary.LittleEndian.PutUint16(h[0:], startID)
	h[2] = stateAdded
	binary.LittleEndian.PutUint32(h[4:], v.Attr)
	if !v.Time.IsZero() {
		t := v.Time.UTC()
		binary.LittleEndian.PutUint16(h[16:], uint16(t.Year()))
		h[18], h[19], h[20], h[21], h[22] = byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second())
	}
	binary.LittleEndian.PutUint32(h[36:], uint32(len(name)))
	binary.LittleEndian.PutUint32(h[40:], uint32(len(v.Data)))
	copy(h[44:], v.GUID[:])
	return append(append(h, name...), v.Data...)
}

// SignatureListX509 is an EFI_SIGNATURE_LIST holding one X.509 certificate (DER) owned by owner.
func SignatureListX509(owner GUID, der []byte) []byte {
	b := make([]byte, 28+16+len(der))
	copy(b, CertX509[:])
	binary.LittleEndian.PutUint32(b[16:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[20:], 0)
	binary.LittleEndian.PutUint32(b[24:], uint32(16+len(der)))
	copy(b[28:], owner[:])
	copy(b[44:], der)
	return b
}

// Keys are the certificates (DER) to enroll. The same certificate may serve as PK, KEK and db,
// as in OVMF's snakeoil store; a real machine owner keeps them apart.
type Keys struct {
	PK, KEK, DB []byte
	Owner       GUID // signature owner of the KEK and db entries
	PKOwner     GUID // of the PK entry; Owner when zero
}

// EnrollSecureBoot returns the template store with PK, KEK and db set and Secure Boot enabled:
// on its next boot the firmware is in user mode and only runs images the db key signed.
func EnrollSecureBoot(template []byte, k Keys, now time.Time) ([]byte, error) {
	if len(k.PK) == 0 || len(k.KEK) == 0 || len(k.DB) == 0 {
		return nil, errors.New("PK, KEK and db certificates are all required")
	}
	pkOwner := k.PKOwner
	if pkOwner == (GUID{}) {
		pkOwner = k.Owner
	}
	return Append(template,
		Var{Name: "db", GUID: ImageSecurityDB, Attr: authAttrs, Time: now, Data: SignatureListX509(k.Owner, k.DB)},
		Var{Name: "KEK", GUID: GlobalVariable, Attr: authAttrs, Time: now, Data: SignatureListX509(k.Owner, k.KEK)},
		// PK last: the firmware leaves setup mode when it sees a PK.
		Var{Name: "PK", GUID: GlobalVariable, Attr: authAttrs, Time: now, Data: SignatureListX509(pkOwner, k.PK)},
		// Not the vendor's (Microsoft's) default keys.
		Var{Name: "VendorKeysNv", GUID: VendorKeysVar, Attr: AttrNonVolatile | AttrBootService | AttrTimeBasedAuth, Data: []byte{0}},
		Var{Name: "SecureBootEnable", GUID: SecureBootEnableVar, Attr: AttrNonVolatile | AttrBootService, Data: []byte{1}},
		Var{Name: "CustomMode", GUID: CustomModeVar, Attr: AttrNonVolatile | AttrBootService, Data: []byte{0}},
	)
}

func encodeName(s string) []byte {
	u := utf16.Encode([]rune(s + "\x00"))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func decodeName(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return strings.TrimRight(string(utf16.Decode(u)), "\x00")
}

func align4(n int) int { return (n + 3) &^ 3 }
