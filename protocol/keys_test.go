package protocol

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

func genKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func pubPEM(t testing.TB, pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// certPEM makes a self-signed certificate, a CA or not.
func certPEM(t *testing.T, isCA bool) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), nil)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestParseCA(t *testing.T) {
	if _, err := ParseCA(certPEM(t, true)); err != nil {
		t.Fatalf("CA refused: %v", err)
	}
	if _, err := ParseCA([]byte("-----BEGIN NOTHING-----\n")); err == nil {
		t.Fatal("no certificate accepted")
	}
}

func TestParsePublicKey(t *testing.T) {
	pub, priv := genKey(t)
	privDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"pem", pubPEM(t, pub), true},
		{"base64", []byte(base64.StdEncoding.EncodeToString(pub) + "\n"), true},
		{"hex", []byte(hex.EncodeToString(pub)), true},
		{"private key pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), false},
		{"short", []byte(hex.EncodeToString(pub[:31])), false},
		{"empty", nil, false},
		{"garbage", []byte("ssh-ed25519 AAAA"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePublicKey(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && !k.Equal(pub) {
				t.Fatal("wrong key")
			}
		})
	}
}

// FuzzParsePublicKey: key files come from the operator's build input; garbage must be an
// error, never a panic or a zero key.
func FuzzParsePublicKey(f *testing.F) {
	pub, _ := genKey(f)
	f.Add(pubPEM(f, pub))
	f.Add([]byte(hex.EncodeToString(pub)))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParsePublicKey(b)
		if err == nil && len(k) != ed25519.PublicKeySize {
			t.Fatalf("key of %d bytes", len(k))
		}
	})
}

func TestParseCARefusesLeaf(t *testing.T) {
	if _, err := ParseCA(certPEM(t, false)); err == nil {
		t.Fatal("server certificate accepted as CA")
	}
}
