package trust

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"io"

	"github.com/flashline/flashline/protocol"
)

// VerifyBytes checks downloaded bytes (a scenario) against the artifact of a verified job.
// Call it before parsing the bytes: a parser must never see content the operator did not sign.
func VerifyBytes(what string, b []byte, a protocol.Artifact) error {
	want, err := parseSHA256(a.SHA256)
	if err != nil {
		return refuse(ReasonHashMismatch, "%s %s: %v", what, a.URL, err)
	}
	if a.Size > 0 && int64(len(b)) != a.Size {
		return refuse(ReasonHashMismatch, "%s %s is %d bytes, the signed job says %d", what, a.URL, len(b), a.Size)
	}
	got := sha256.Sum256(b)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return refuse(ReasonHashMismatch, "%s %s has sha256 %x, the signed job says %s (swapped after signing?)", what, a.URL, got, a.SHA256)
	}
	return nil
}

// VerifyingReader passes a stream through while hashing it, and turns the end of the stream
// into a Refusal when the bytes are not the ones the signed job names. It also refuses as soon
// as the stream grows past the signed size, so a swapped, larger image is stopped early.
//
// The bytes read before the end are not yet trusted: a consumer that writes them somewhere
// must keep that write uncommitted (the flash pipeline holds the first MiB back) until Read
// has returned io.EOF.
type VerifyingReader struct {
	r    io.Reader
	what string
	a    protocol.Artifact
	want []byte
	h    hash.Hash
	n    int64
	err  error // sticky result once decided
}

// NewVerifyingReader verifies r against a (whose SHA256 and, when non-zero, Size are those of
// the bytes r yields). what names the artifact in messages ("image", "scenario").
func NewVerifyingReader(what string, r io.Reader, a protocol.Artifact) *VerifyingReader {
	v := &VerifyingReader{r: r, what: what, a: a, h: sha256.New()}
	want, err := parseSHA256(a.SHA256)
	if err != nil {
		v.err = refuse(ReasonHashMismatch, "%s %s: %v", what, a.URL, err)
	}
	v.want = want
	return v
}

// Read implements io.Reader.
func (v *VerifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.a.Size > 0 {
		// Never hand out a byte past the signed size: read one more than allowed to notice.
		if room := v.a.Size - v.n + 1; int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, err := v.r.Read(p)
	if v.a.Size > 0 && v.n+int64(n) > v.a.Size {
		n = int(v.a.Size - v.n)
		v.h.Write(p[:n])
		v.n += int64(n)
		v.err = refuse(ReasonHashMismatch, "%s %s is longer than the signed %d bytes", v.what, v.a.URL, v.a.Size)
		return n, v.err
	}
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		v.err = v.finish()
		return n, v.err
	}
	return n, err
}

func (v *VerifyingReader) finish() error {
	if v.a.Size > 0 && v.n != v.a.Size {
		return refuse(ReasonHashMismatch, "%s %s ended after %d bytes, the signed job says %d", v.what, v.a.URL, v.n, v.a.Size)
	}
	got := v.h.Sum(nil)
	if subtle.ConstantTimeCompare(got, v.want) != 1 {
		return refuse(ReasonHashMismatch, "%s %s has sha256 %s, the signed job says %s (swapped after signing?)", v.what, v.a.URL, hex.EncodeToString(got), v.a.SHA256)
	}
	return io.EOF
}

// Verified reports whether the whole stream was read and matched.
func (v *VerifyingReader) Verified() bool { return v.err == io.EOF }

// N is the number of bytes passed through so far.
func (v *VerifyingReader) N() int64 { return v.n }
