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
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/flashline/flashline/protocol"
)

// Where mkinitrd places the trust anchors inside the initramfs (**contract** with
// initramfs/mkinitrd's -pubkey and -ca flags).
const (
	PubKeyPath = "/etc/flashline/operator.pub"
	CAPath     = "/etc/flashline/ca.pem"
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
	return LoadFiles(filepath.Join(root, PubKeyPath), filepath.Join(root, CAPath))
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
			k, err := ParsePublicKey(b)
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
			pool, err := ParseCA(b)
			if err != nil {
				return nil, fmt.Errorf("pinned CA %s: %w", caPath, err)
			}
			p.CA = pool
			p.CAPEM = b
		}
	}
	return p, nil
}

// ParsePublicKey reads an ed25519 public key in any of the spellings an operator may hand to
// the build: a PEM "PUBLIC KEY" block (what `flashline-server keygen` and `openssl pkey -pubout`
// write), or the 32 raw key bytes in base64 or hex on one line.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\" (was a private key given by mistake?)", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, want ed25519", k)
		}
		return ek, nil
	}
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return nil, errors.New("empty key file")
	}
	if raw, err := hex.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	if raw, err := base64.StdEncoding.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	return nil, errors.New("not an ed25519 public key (want PEM \"PUBLIC KEY\", or 32 bytes in base64 or hex)")
}

// ParseCA reads one or more PEM certificates into a pool; at least one must be a CA.
func ParseCA(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("certificate %q is not a CA: pin the CA (ca.pem), not the server's own certificate", c.Subject)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM CERTIFICATE found")
	}
	return pool, nil
}
