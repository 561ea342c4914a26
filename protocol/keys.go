package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// Where initramfs/mkinitrd's -pubkey and -ca flags place the trust anchors inside the
// initramfs, and where agent/trust reads them (**contract**).
const (
	PubKeyPath = "/etc/flashline/operator.pub"
	CAPath     = "/etc/flashline/ca.pem"
)

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
