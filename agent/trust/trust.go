// Package trust is the agent's trust policy: which line operator it obeys and how it talks to
// that operator's server. A factory line network has rogue DHCP servers, stale servers and
// curious people; the agent therefore only runs a job whose ed25519 signature verifies with the
// operator public key built into its initramfs, only for this device and this boot, and only
// trusts scenario and image bytes through the SHA-256 hashes inside that signed job.
//
// An agent built without a public key is a development agent: it accepts unsigned jobs and
// says so loudly. An agent built with a pinned CA refuses to speak plain HTTP to the line API,
// because an attacker who can answer on the network could otherwise strip TLS (a downgrade);
// downloads of images and scenarios may stay on plain HTTP since their hashes are signed.
package trust

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/flashline/flashline/protocol"
)

// Policy is what the agent trusts. The zero value is a development policy: no key (unsigned
// jobs accepted) and no pinned CA.
type Policy struct {
	// Key is the line operator's public key; nil means a development agent.
	Key ed25519.PublicKey
	// CA is the pinned certificate pool for HTTPS to the line server; nil means not pinned.
	CA *x509.CertPool
	// CAPEM is the pinned CA as loaded (to show its subject on the console).
	CAPEM []byte
}

// Development reports whether this agent accepts unsigned jobs.
func (p *Policy) Development() bool { return p == nil || p.Key == nil }

// Pinned reports whether the agent pins a CA for the line API.
func (p *Policy) Pinned() bool { return p != nil && p.CA != nil }

// KeyID names the operator key as the server's SignedJob.KeyID does; empty without a key.
func (p *Policy) KeyID() string {
	if p.Development() {
		return ""
	}
	return protocol.KeyID(p.Key)
}

// String summarises the policy in one console line.
func (p *Policy) String() string {
	var b strings.Builder
	if p.Development() {
		b.WriteString("UNSIGNED DEVELOPMENT AGENT: accepts unsigned jobs")
	} else {
		fmt.Fprintf(&b, "operator key %s", p.KeyID())
	}
	if p.Pinned() {
		b.WriteString(", line API over pinned HTTPS only")
	} else {
		b.WriteString(", no pinned CA")
	}
	return b.String()
}

// Load reads the trust anchors below root ("/" on a device; a temporary directory in tests).
// A missing file is not an error: without operator.pub the agent is a development agent and
// without ca.pem it pins nothing. A file that exists but cannot be read or parsed is an error,
// never a silent fall-back to development mode: a damaged key must not open the door.
func Load(root string) (*Policy, error) {
	return LoadFiles(filepath.Join(root, protocol.PubKeyPath), filepath.Join(root, protocol.CAPath))
}

// LoadFiles is Load with explicit paths; an empty path means "not configured".
func LoadFiles(pubPath, caPath string) (*Policy, error) {
	p := &Policy{}
	if pubPath != "" {
		b, err := os.ReadFile(pubPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("read operator public key: %w", err)
		default:
			k, err := protocol.ParsePublicKey(b)
			if err != nil {
				return nil, fmt.Errorf("operator public key %s: %w", pubPath, err)
			}
			p.Key = k
		}
	}
	if caPath != "" {
		b, err := os.ReadFile(caPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("read pinned CA: %w", err)
		default:
			pool, err := protocol.ParseCA(b)
			if err != nil {
				return nil, fmt.Errorf("pinned CA %s: %w", caPath, err)
			}
			p.CA = pool
			p.CAPEM = b
		}
	}
	return p, nil
}
