package trust

import (
	"crypto/sha256"
	"crypto/subtle"

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
