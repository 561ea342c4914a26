package trust

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/flashline/flashline/protocol"
)

// Reason says in one word why the agent refused something; it is shown on the console and
// reported to the server so the line operator can tell an attack from a misconfiguration.
type Reason string

// Refusal reasons.
const (
	ReasonUnsigned     Reason = "unsigned"         // no signature, and the agent has a key
	ReasonWrongKey     Reason = "wrong-key"        // signed by a key other than the operator's
	ReasonBadSignature Reason = "bad-signature"    // claims the operator's key but does not verify (tampered)
	ReasonMalformed    Reason = "malformed"        // verifies but is not a usable job
	ReasonOtherDevice  Reason = "other-device"     // a job for another serial or MAC
	ReasonReplayed     Reason = "replayed"         // not issued for this boot's nonce
	ReasonExpired      Reason = "expired"          // past its expiry
	ReasonHashMismatch Reason = "hash-mismatch"    // scenario or image bytes differ from the signed hash
	ReasonDowngrade    Reason = "downgrade"        // plain HTTP to a line API whose CA is pinned
	ReasonUntrusted    Reason = "untrusted-server" // TLS certificate not from the pinned CA
	ReasonOtherInv     Reason = "other-inventory"  // issued for another inventory (a relayed, edited hello)
)

// Refusal is the error for anything the trust policy refuses. Use errors.As to get the Reason.
type Refusal struct {
	Reason Reason
	Detail string
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("refused (%s): %s", r.Reason, r.Detail)
}

func refuse(reason Reason, format string, args ...any) error {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the refusal reason in err's chain, or "" when err is not a refusal.
func ReasonOf(err error) Reason {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// Expect is what the agent knows about itself when a job arrives.
type Expect struct {
	Serial string // DMI serial as sent in Hello (may be empty on boards without one)
	MAC    string // the boot NIC's MAC as sent in Hello
	Nonce  string // this boot's nonce as sent in Hello
	// InventorySHA256 is protocol.InventoryHash of the inventory sent in Hello.
	InventorySHA256 string
	// Now is the device's clock. The zero time skips the expiry check: a factory-fresh board's
	// RTC is often years off, and the nonce alone already makes a job single-use.
	Now time.Time
}

// ClockSkew is how far the device clock may run ahead of the server's before a job counts as
// expired.
const ClockSkew = 5 * time.Minute

// VerifyJob checks a signed job against the policy and this device, in the order that gives
// the most useful reason: signature first (nothing in an unverified job is believed), then
// identity, nonce and expiry, then the artifact hashes the rest of the journey relies on.
func (p *Policy) VerifyJob(sj *protocol.SignedJob, want Expect) (protocol.Job, error) {
	if sj == nil || len(sj.Job) == 0 {
		return protocol.Job{}, refuse(ReasonMalformed, "the server sent no job")
	}
	if !p.Development() {
		if len(sj.Signature) == 0 {
			return protocol.Job{}, refuse(ReasonUnsigned, "job is not signed; this agent only runs jobs signed by operator key %s", p.KeyID())
		}
		if !ed25519.Verify(p.Key, sj.Job, sj.Signature) {
			if sj.KeyID != "" && sj.KeyID != p.KeyID() {
				return protocol.Job{}, refuse(ReasonWrongKey, "job signed by key %q, this agent trusts only operator key %s", sj.KeyID, p.KeyID())
			}
			return protocol.Job{}, refuse(ReasonBadSignature, "job signature does not verify with operator key %s (job altered after signing, or forged)", p.KeyID())
		}
	}
	job, err := decodeJob(sj.Job)
	if err != nil {
		return protocol.Job{}, err
	}
	if err := checkIdentity(job.Device, want); err != nil {
		return protocol.Job{}, err
	}
	if job.Nonce == "" || want.Nonce == "" || job.Nonce != want.Nonce {
		return protocol.Job{}, refuse(ReasonReplayed, "job %s was issued for boot nonce %q, this boot's nonce is %q", job.RunID, job.Nonce, want.Nonce)
	}
	if !want.Now.IsZero() && !job.ExpiresAt.IsZero() && want.Now.After(job.ExpiresAt.Add(ClockSkew)) {
		return protocol.Job{}, refuse(ReasonExpired, "job %s expired at %s (device clock %s)", job.RunID, job.ExpiresAt.UTC().Format(time.RFC3339), want.Now.UTC().Format(time.RFC3339))
	}
	if err := p.checkInventory(job, want); err != nil {
		return protocol.Job{}, err
	}
	return job, nil
}

// checkInventory refuses a job chosen for other hardware: the server picks rule, image,
// target and after-action by the inventory, so a relay that edits the hello (another module
// list) but keeps this device's serial, MAC and nonce would otherwise get another rule's job
// signed for this device. A signed job must bind an inventory; a development agent accepts a
// job from a server too old to bind one.
func (p *Policy) checkInventory(job protocol.Job, want Expect) error {
	if job.InventorySHA256 == "" {
		if p.Development() {
			return nil
		}
		return refuse(ReasonOtherInv, "job %s binds no inventory (a line server older than this agent?)", job.RunID)
	}
	if job.InventorySHA256 != want.InventorySHA256 {
		return refuse(ReasonOtherInv, "job %s was issued for inventory %s, this device's inventory is %s (hello relayed with other hardware?)",
			job.RunID, shortHash(job.InventorySHA256), shortHash(want.InventorySHA256))
	}
	return nil
}

func shortHash(h string) string {
	if h == "" {
		return `""`
	}
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// decodeJob decodes the verified bytes strictly: a job with fields this agent does not know is
// still accepted (servers may be newer), but every artifact it must fetch needs a hash.
func decodeJob(b []byte) (protocol.Job, error) {
	var job protocol.Job
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&job); err != nil {
		return protocol.Job{}, refuse(ReasonMalformed, "decode job: %v", err)
	}
	if dec.More() {
		return protocol.Job{}, refuse(ReasonMalformed, "trailing data after the job")
	}
	if job.RunID == "" {
		return protocol.Job{}, refuse(ReasonMalformed, "job has no run id")
	}
	for _, a := range []struct {
		what string
		a    protocol.Artifact
	}{{"scenario", job.Scenario}, {"image", job.Image}} {
		if a.a.URL == "" {
			continue
		}
		if _, err := parseSHA256(a.a.SHA256); err != nil {
			return protocol.Job{}, refuse(ReasonMalformed, "job %s: %s %s: %v", job.RunID, a.what, a.a.URL, err)
		}
		if a.a.Size < 0 {
			return protocol.Job{}, refuse(ReasonMalformed, "job %s: %s size %d", job.RunID, a.what, a.a.Size)
		}
	}
	return job, nil
}

func checkIdentity(id protocol.Identity, want Expect) error {
	if id.Serial == "" && id.MAC == "" {
		return refuse(ReasonOtherDevice, "job names no device")
	}
	if strings.TrimSpace(id.Serial) != strings.TrimSpace(want.Serial) {
		return refuse(ReasonOtherDevice, "job is for serial %q, this device is %q", id.Serial, want.Serial)
	}
	if id.MAC != "" || want.MAC != "" {
		if !sameMAC(id.MAC, want.MAC) {
			return refuse(ReasonOtherDevice, "job is for MAC %q, this device boots from %q", id.MAC, want.MAC)
		}
	}
	return nil
}

func sameMAC(a, b string) bool {
	ma, erra := net.ParseMAC(a)
	mb, errb := net.ParseMAC(b)
	if erra != nil || errb != nil {
		return a != "" && strings.EqualFold(a, b)
	}
	return bytes.Equal(ma, mb)
}

func parseSHA256(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("no sha256 in the job")
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("sha256 %q is not 64 hex digits", s)
	}
	return b, nil
}
