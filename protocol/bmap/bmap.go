// Package bmap reads and writes bmaptool's block maps (.bmap files, format version 2.x with
// SHA-256 range checksums): which blocks of a raw image hold data, with a checksum per range
// of blocks. The flash writes only the mapped ranges and checks each against its checksum;
// the blocks between them are free space whose content does not matter.
package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxFileSize bounds a .bmap file: a few hundred thousand ranges, far more than any image
// of a flash line has.
const MaxFileSize = 32 << 20

// Map is a parsed block map.
type Map struct {
	Version     string
	ImageSize   int64
	BlockSize   int64
	BlocksCount int64
	// MappedBlocks is the number of blocks in Ranges.
	MappedBlocks int64
	// Ranges are sorted, do not overlap and lie inside the image.
	Ranges []Range
}

// Range is the blocks First..Last (inclusive) and the SHA-256 of their bytes (the last
// block of the image counts only up to ImageSize).
type Range struct {
	First, Last int64
	SHA256      [sha256.Size]byte
}

// Bytes returns the byte span [off, end) of r in an image of m.
func (m *Map) Bytes(r Range) (off, end int64) {
	return r.First * m.BlockSize, min((r.Last+1)*m.BlockSize, m.ImageSize)
}

// MappedBytes is the number of image bytes in the ranges.
func (m *Map) MappedBytes() int64 {
	var n int64
	for _, r := range m.Ranges {
		off, end := m.Bytes(r)
		n += end - off
	}
	return n
}

// The XML form. Values are trimmed: bmaptool writes them with spaces around.
type xmlMap struct {
	XMLName      xml.Name   `xml:"bmap"`
	Version      string     `xml:"version,attr"`
	ImageSize    string     `xml:"ImageSize"`
	BlockSize    string     `xml:"BlockSize"`
	BlocksCount  string     `xml:"BlocksCount"`
	MappedBlocks string     `xml:"MappedBlocksCount"`
	ChecksumType string     `xml:"ChecksumType"`
	FileChecksum string     `xml:"BmapFileChecksum"`
	Ranges       []xmlRange `xml:"BlockMap>Range"`
}

type xmlRange struct {
	Sum    string `xml:"chksum,attr"`
	Blocks string `xml:",chardata"`
}

// ErrInvalid is wrapped by every error Parse returns for a bad map.
var ErrInvalid = errors.New("invalid bmap")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse reads a .bmap file. It checks everything that can be checked without the image: the
// format version and checksum type, the file's own checksum, the block counts against the
// image size, and that ranges are well-formed, sorted, disjoint and inside the image.
func Parse(data []byte) (*Map, error) {
	if len(data) > MaxFileSize {
		return nil, invalid("file is larger than %d bytes", MaxFileSize)
	}
	var x xmlMap
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	if err := dec.Decode(&x); err != nil {
		return nil, invalid("XML: %v", err)
	}
	m := &Map{Version: strings.TrimSpace(x.Version)}
	major, _, _ := strings.Cut(m.Version, ".")
	switch major {
	case "2":
	case "1":
		return nil, invalid("format version %s uses SHA-1 checksums; regenerate the map (bmaptool create, or flashline-bmap) for version 2 with SHA-256", m.Version)
	default:
		return nil, invalid("format version %q: only 2.x is supported", m.Version)
	}
	if ct := strings.TrimSpace(x.ChecksumType); ct != "sha256" {
		return nil, invalid("checksum type %q: only sha256 is supported", ct)
	}
	var err error
	num := func(name, s string, least int64) int64 {
		if err != nil {
			return 0
		}
		v, perr := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if perr != nil || v < least {
			err = invalid("%s %q: want an integer >= %d", name, strings.TrimSpace(s), least)
		}
		return v
	}
	m.ImageSize = num("ImageSize", x.ImageSize, 1)
	m.BlockSize = num("BlockSize", x.BlockSize, 1)
	m.BlocksCount = num("BlocksCount", x.BlocksCount, 1)
	m.MappedBlocks = num("MappedBlocksCount", x.MappedBlocks, 0)
	if err != nil {
		return nil, err
	}
	if m.ImageSize > 1<<50 {
		return nil, invalid("ImageSize %d: larger than any disk (1 PiB)", m.ImageSize)
	}
	if m.BlockSize&(m.BlockSize-1) != 0 || m.BlockSize < 512 || m.BlockSize > 1<<24 {
		return nil, invalid("BlockSize %d: want a power of two from 512 to 16 MiB", m.BlockSize)
	}
	if want := (m.ImageSize + m.BlockSize - 1) / m.BlockSize; m.BlocksCount != want {
		return nil, invalid("BlocksCount %d, but an image of %d bytes has %d blocks of %d", m.BlocksCount, m.ImageSize, want, m.BlockSize)
	}
	if err := checkFileChecksum(data, strings.TrimSpace(x.FileChecksum)); err != nil {
		return nil, err
	}
	var mapped int64
	m.Ranges = make([]Range, 0, len(x.Ranges))
	for i, xr := range x.Ranges {
		r, err := parseRange(xr)
		if err != nil {
			return nil, invalid("range %d: %v", i+1, err)
		}
		if r.Last >= m.BlocksCount {
			return nil, invalid("range %d (blocks %d-%d) is outside the image's %d blocks", i+1, r.First, r.Last, m.BlocksCount)
		}
		if i > 0 && r.First <= m.Ranges[i-1].Last {
			return nil, invalid("range %d (blocks %d-%d) overlaps or comes before range %d (blocks %d-%d)", i+1, r.First, r.Last, i, m.Ranges[i-1].First, m.Ranges[i-1].Last)
		}
		mapped += r.Last - r.First + 1
		m.Ranges = append(m.Ranges, r)
	}
	if mapped != m.MappedBlocks {
		return nil, invalid("MappedBlocksCount %d, but the ranges hold %d blocks", m.MappedBlocks, mapped)
	}
	return m, nil
}

func parseRange(xr xmlRange) (Range, error) {
	var r Range
	s := strings.TrimSpace(xr.Blocks)
	a, b, isSpan := strings.Cut(s, "-")
	first, err := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	if err != nil || first < 0 {
		return r, fmt.Errorf("%q: want FIRST-LAST or one block number", s)
	}
	last := first
	if isSpan {
		last, err = strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if err != nil || last < first {
			return r, fmt.Errorf("%q: want FIRST-LAST with FIRST <= LAST", s)
		}
	}
	sum, err := hex.DecodeString(strings.TrimSpace(xr.Sum))
	if err != nil || len(sum) != sha256.Size {
		return r, fmt.Errorf("blocks %s: chksum %q is not a SHA-256 (64 hex digits)", s, xr.Sum)
	}
	r.First, r.Last = first, last
	copy(r.SHA256[:], sum)
	return r, nil
}

// checkFileChecksum verifies BmapFileChecksum: the SHA-256 of the file with the checksum's
// own digits replaced by zeros. Maps without one (bmaptool before 2.0's checksum) pass.
func checkFileChecksum(data []byte, sum string) error {
	if sum == "" {
		return nil
	}
	want, err := hex.DecodeString(sum)
	if err != nil || len(want) != sha256.Size {
		return invalid("BmapFileChecksum %q is not a SHA-256", sum)
	}
	open := []byte("<BmapFileChecksum>")
	i := bytes.Index(data, open)
	j := bytes.Index(data, []byte("</BmapFileChecksum>"))
	if i < 0 || j < i {
		return invalid("BmapFileChecksum: element not found as written")
	}
	k := bytes.Index(data[i:j], []byte(sum))
	if k < 0 {
		return invalid("BmapFileChecksum: digits not found as written")
	}
	zeroed := bytes.Clone(data)
	copy(zeroed[i+k:], bytes.Repeat([]byte("0"), len(sum)))
	if got := sha256.Sum256(zeroed); !bytes.Equal(got[:], want) {
		return invalid("BmapFileChecksum mismatch: the file was changed after it was written")
	}
	return nil
}

// Marshal writes m in bmaptool's format version 2.0, with its file checksum.
func (m *Map) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version=\"1.0\" ?>\n")
	b.WriteString("<!-- Block map of a raw image: only the mapped block ranges need to be\n")
	b.WriteString("     written; each range has the SHA-256 of its bytes. Written by flashline-bmap. -->\n")
	b.WriteString("<bmap version=\"2.0\">\n")
	fmt.Fprintf(&b, "    <ImageSize> %d </ImageSize>\n", m.ImageSize)
	fmt.Fprintf(&b, "    <BlockSize> %d </BlockSize>\n", m.BlockSize)
	fmt.Fprintf(&b, "    <BlocksCount> %d </BlocksCount>\n", m.BlocksCount)
	fmt.Fprintf(&b, "    <MappedBlocksCount> %d </MappedBlocksCount>\n", m.MappedBlocks)
	b.WriteString("    <ChecksumType> sha256 </ChecksumType>\n")
	b.WriteString("    <BmapFileChecksum> ")
	at := b.Len()
	b.WriteString(strings.Repeat("0", 2*sha256.Size))
	b.WriteString(" </BmapFileChecksum>\n")
	b.WriteString("    <BlockMap>\n")
	for _, r := range m.Ranges {
		span := strconv.FormatInt(r.First, 10)
		if r.Last != r.First {
			span += "-" + strconv.FormatInt(r.Last, 10)
		}
		fmt.Fprintf(&b, "        <Range chksum=\"%x\"> %s </Range>\n", r.SHA256, span)
	}
	b.WriteString("    </BlockMap>\n</bmap>\n")
	out := b.Bytes()
	sum := sha256.Sum256(out)
	copy(out[at:], hex.EncodeToString(sum[:]))
	return out
}
