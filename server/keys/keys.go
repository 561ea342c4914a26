// Package keys manages the line operator's secrets on the server host: the ed25519 key that
// signs jobs (the private half never leaves this host; the public half is baked into every
// agent's initramfs) and a small CA with a server certificate for the line API's HTTPS (the CA
// certificate is pinned in the initramfs the same way).
//
// Private key files are created 0600 in a 0700 directory, never overwritten, and refused when
// loaded from a file that group or others can read: a signing key that other accounts on the
// host could copy is no longer the operator's alone.
package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/flashline/flashline/protocol"
)

// File names inside a key directory.
const (
	PrivateKeyFile = "operator.key"
	PublicKeyFile  = "operator.pub"
)

// Keypair names the files Generate wrote.
type Keypair struct {
	Private string // path of the private key (PKCS#8 PEM, 0600)
	Public  string // path of the public key (PKIX PEM): hand this to `make PUBKEY=...`
	KeyID   string // the id the server puts into SignedJob.KeyID
}

// Generate creates a new operator keypair in dir. It refuses to overwrite an existing key:
// replacing a key silently would lock out every initramfs already built with the old one.
func Generate(dir string) (Keypair, error) {
	if err := secretDir(dir); err != nil {
		return Keypair{}, err
	}
	kp := Keypair{Private: filepath.Join(dir, PrivateKeyFile), Public: filepath.Join(dir, PublicKeyFile)}
	if err := refuseExisting("agents built with the old key would no longer obey this server", kp.Private, kp.Public); err != nil {
		return Keypair{}, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Keypair{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Keypair{}, fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Keypair{}, fmt.Errorf("encode public key: %w", err)
	}
	if err := writeNew(kp.Private, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return Keypair{}, err
	}
	if err := writeNew(kp.Public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(kp.Private)
		return Keypair{}, err
	}
	kp.KeyID = protocol.KeyID(pub)
	return kp, nil
}

// LoadPrivateKey reads the operator's signing key, refusing a file that group or others can
// read or that is not a regular file.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	k, err := parsePrivate(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key %s is %T, want ed25519 (flashline-server keygen)", path, k)
	}
	return ek, nil
}

// LoadPublicKey reads a public key in any spelling the agent accepts.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	k, err := protocol.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

func parsePrivate(b []byte) (any, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\" (PKCS#8)", blk.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	return k, nil
}

// readSecret reads a private key file after checking who else could have read it.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open private key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so a swap between check and read cannot fool us.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat private key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("private key %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("private key %s has mode %04o: group or others can read it; refusing to use it (fix with: chmod 600 %s, and consider the key leaked if others had access)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	return b, nil
}

// secretDir creates dir 0700, or accepts an existing directory only when group and others
// have no access to it.
func secretDir(dir string) error {
	if dir == "" {
		return errors.New("no output directory given")
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create key directory: %w", err)
		}
		// MkdirAll is subject to the umask; make the mode exact.
		return os.Chmod(dir, 0o700)
	}
	if err != nil {
		return fmt.Errorf("key directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("key directory %s has mode %04o: group or others can access it; use a new directory or chmod 700 %s first", dir, perm, dir)
	}
	return nil
}

// refuseExisting fails when any of paths exists; why says what overwriting would break.
func refuseExisting(why string, paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists: refusing to overwrite it (%s); move it away first", p, why)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	return nil
}

// writeNew creates path with exactly mode, failing if it exists.
func writeNew(path string, b []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil { // the umask may have narrowed or, worse, nothing else did
		f.Close()
		os.Remove(path)
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}
