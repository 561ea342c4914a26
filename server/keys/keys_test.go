package keys

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/trust"
	"github.com/flashline/flashline/protocol"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	kp, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("dir mode %04o", m)
	}
	if m := mode(t, kp.Private); m != 0o600 {
		t.Errorf("private key mode %04o", m)
	}
	priv, err := LoadPrivateKey(kp.Private)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) || kp.KeyID != protocol.KeyID(pub) {
		t.Fatal("public key does not match the private key")
	}
	// The agent loads the same file mkinitrd copies to /etc/flashline/operator.pub.
	b, _ := os.ReadFile(kp.Public)
	if k, err := protocol.ParsePublicKey(b); err != nil || !k.Equal(pub) {
		t.Fatalf("agent cannot read the public key: %v", err)
	}
	// A job signed with the loaded key verifies on the agent.
	sj, _ := protocol.SignJob(protocol.Job{RunID: "r", Nonce: "n", Device: protocol.Identity{Serial: "S"}, InventorySHA256: "inv"}, priv)
	if _, err := (&trust.Policy{Key: pub}).VerifyJob(&sj, trust.Expect{Serial: "S", Nonce: "n", InventorySHA256: "inv"}); err != nil {
		t.Fatal(err)
	}

	// Never overwrite.
	old, _ := os.ReadFile(kp.Private)
	if _, err := Generate(dir); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second Generate: %v", err)
	}
	if now, _ := os.ReadFile(kp.Private); string(now) != string(old) {
		t.Fatal("private key changed")
	}
}

func TestGenerateRefusesOpenDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("Generate into a 0755 dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, PrivateKeyFile)); err == nil {
		t.Fatal("key written into an open directory")
	}
}

func TestLoadPrivateKeyPermissions(t *testing.T) {
	kp, err := Generate(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		if err := os.Chmod(kp.Private, m); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPrivateKey(kp.Private)
		if err == nil || !strings.Contains(err.Error(), "group or others can read it") || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %04o: %v", m, err)
		}
	}
	os.Chmod(kp.Private, 0o400)
	if _, err := LoadPrivateKey(kp.Private); err != nil {
		t.Fatalf("0400: %v", err)
	}
	// A public key where the private one should be is refused with a useful message.
	if _, err := LoadPrivateKey(kp.Public); err == nil {
		t.Fatal("public key loaded as private")
	}
	if _, err := LoadPrivateKey(filepath.Dir(kp.Private)); err == nil {
		t.Fatal("directory loaded as a key")
	}
}

func TestInitTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	f, err := InitTLS(dir, []string{"127.0.0.1", "line.example"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !f.NewCA {
		t.Error("NewCA false on a fresh directory")
	}
	for _, p := range []string{f.CAKey, f.ServerKey} {
		if m := mode(t, p); m != 0o600 {
			t.Errorf("%s mode %04o", p, m)
		}
	}
	caPEM, _ := os.ReadFile(f.CACert)
	pool, err := protocol.ParseCA(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ServerTLSConfig(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	// A board whose RTC sits at its reset value must still accept the server.
	for _, when := range []time.Time{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), now, now.AddDate(10, 0, 0)} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "line.example", CurrentTime: when}); err != nil {
			t.Errorf("verify at %s: %v", when, err)
		}
	}

	// A real HTTPS round trip through the agent's pinned client.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	resp, err := (&trust.Policy{CA: pool}).APIClient(5 * time.Second).Get(srv.URL)
	if err != nil {
		t.Fatalf("pinned client to tls-init server: %v", err)
	}
	resp.Body.Close()

	// No overwrite; re-issue keeps the CA.
	if _, err := InitTLS(dir, []string{"127.0.0.1"}, now); err == nil {
		t.Fatal("server certificate overwritten")
	}
	os.Rename(f.ServerCert, f.ServerCert+".old")
	os.Rename(f.ServerKey, f.ServerKey+".old")
	f2, err := InitTLS(dir, []string{"10.0.0.5"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if f2.NewCA {
		t.Fatal("re-issue made a new CA: every agent would have to be rebuilt")
	}
	if ca2, _ := os.ReadFile(f.CACert); string(ca2) != string(caPEM) {
		t.Fatal("CA changed")
	}

	os.Chmod(f.ServerKey, 0o644)
	if _, err := ServerTLSConfig(f.ServerCert, f.ServerKey); err == nil {
		t.Fatal("world-readable TLS key accepted")
	}
}

func TestServerCertChainIncludesCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	f, err := InitTLS(dir, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.ServerCert)
	n := 0
	for rest := b; ; n++ {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
	}
	if n != 2 {
		t.Fatalf("server.pem has %d certificates, want leaf + CA", n)
	}
	if _, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey); err != nil {
		t.Fatal(err)
	}
}
