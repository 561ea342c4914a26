package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
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

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var (
	t0       = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	scenario = []byte("name: test\nsteps: []\n")
	image    = bytes.Repeat([]byte("flashline"), 1000)
)

func baseJob() protocol.Job {
	return protocol.Job{
		RunID: "run-1", Nonce: "nonce-1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour),
		Device:   protocol.Identity{Serial: "SN-1", MAC: "52:54:00:12:34:56"},
		Scenario: protocol.Artifact{URL: "/scenarios/s.yaml", SHA256: sum(scenario), Size: int64(len(scenario))},
		Image:    protocol.Artifact{URL: "http://10.0.2.2/img.raw", SHA256: sum(image), Size: int64(len(image))},
		After:    protocol.AfterReboot,
		// The inventory the device sent: meInventory.
		InventorySHA256: meInvHash,
	}
}

var (
	meInventory = protocol.Inventory{DMI: protocol.DMI{Serial: "SN-1", Product: "GM-Box 3"}, Modules: []string{"wifi"}}
	meInvHash   = mustInventoryHash(meInventory)
	me          = Expect{Serial: "SN-1", MAC: "52-54-00-12-34-56", Nonce: "nonce-1", Now: t0.Add(time.Minute), InventorySHA256: meInvHash}
)

func mustInventoryHash(inv protocol.Inventory) string {
	h, err := protocol.InventoryHash(inv)
	if err != nil {
		panic(err)
	}
	return h
}

func sign(t testing.TB, job protocol.Job, priv ed25519.PrivateKey) *protocol.SignedJob {
	t.Helper()
	sj, err := protocol.SignJob(job, priv)
	if err != nil {
		t.Fatal(err)
	}
	return &sj
}

func TestVerifyJob(t *testing.T) {
	pub, priv := genKey(t)
	_, otherPriv := genKey(t)
	p := &Policy{Key: pub}
	mod := func(f func(*protocol.Job)) protocol.Job { j := baseJob(); f(&j); return j }

	tampered := sign(t, baseJob(), priv)
	tampered.Job = bytes.Replace(tampered.Job, []byte(sum(image)), []byte(sum([]byte("evil"))), 1)
	lyingKeyID := sign(t, baseJob(), otherPriv)
	lyingKeyID.KeyID = p.KeyID()

	tests := []struct {
		name string
		p    *Policy
		sj   *protocol.SignedJob
		want Expect
		err  Reason
	}{
		{"good", p, sign(t, baseJob(), priv), me, ""},
		{"no clock skips expiry", p, sign(t, mod(func(j *protocol.Job) { j.ExpiresAt = t0.Add(-time.Hour) }), priv), Expect{Serial: "SN-1", MAC: me.MAC, Nonce: me.Nonce, InventorySHA256: meInvHash}, ""},
		{"within clock skew", p, sign(t, baseJob(), priv), Expect{Serial: "SN-1", MAC: me.MAC, Nonce: me.Nonce, Now: t0.Add(time.Hour + time.Minute), InventorySHA256: meInvHash}, ""},
		{"nil", p, nil, me, ReasonMalformed},
		{"unsigned", p, sign(t, baseJob(), nil), me, ReasonUnsigned},
		{"other key", p, sign(t, baseJob(), otherPriv), me, ReasonWrongKey},
		{"other key claiming ours", p, lyingKeyID, me, ReasonBadSignature},
		{"tampered after signing", p, tampered, me, ReasonBadSignature},
		{"other serial", p, sign(t, mod(func(j *protocol.Job) { j.Device.Serial = "SN-2" }), priv), me, ReasonOtherDevice},
		{"other MAC", p, sign(t, mod(func(j *protocol.Job) { j.Device.MAC = "52:54:00:12:34:57" }), priv), me, ReasonOtherDevice},
		{"no identity", p, sign(t, mod(func(j *protocol.Job) { j.Device = protocol.Identity{} }), priv), me, ReasonOtherDevice},
		{"serial missing in job", p, sign(t, mod(func(j *protocol.Job) { j.Device.Serial = "" }), priv), me, ReasonOtherDevice},
		{"other nonce", p, sign(t, mod(func(j *protocol.Job) { j.Nonce = "nonce-0" }), priv), me, ReasonReplayed},
		{"no nonce", p, sign(t, mod(func(j *protocol.Job) { j.Nonce = "" }), priv), me, ReasonReplayed},
		{"expired", p, sign(t, mod(func(j *protocol.Job) { j.ExpiresAt = t0.Add(-time.Hour) }), priv), me, ReasonExpired},
		{"no run id", p, sign(t, mod(func(j *protocol.Job) { j.RunID = "" }), priv), me, ReasonMalformed},
		{"image without hash", p, sign(t, mod(func(j *protocol.Job) { j.Image.SHA256 = "" }), priv), me, ReasonMalformed},
		{"scenario bad hash", p, sign(t, mod(func(j *protocol.Job) { j.Scenario.SHA256 = "xyz" }), priv), me, ReasonMalformed},
		{"job for another inventory (relayed hello, other modules)", p, sign(t, mod(func(j *protocol.Job) {
			other := meInventory
			other.Modules = []string{"wifi", "lte"}
			j.InventorySHA256 = mustInventoryHash(other)
		}), priv), me, ReasonOtherInv},
		{"signed job binding no inventory", p, sign(t, mod(func(j *protocol.Job) { j.InventorySHA256 = "" }), priv), me, ReasonOtherInv},
		{"dev agent takes unsigned", &Policy{}, sign(t, baseJob(), nil), me, ""},
		{"dev agent takes a job of an old server without inventory", &Policy{}, sign(t, mod(func(j *protocol.Job) { j.InventorySHA256 = "" }), nil), me, ""},
		{"dev agent still checks inventory", &Policy{}, sign(t, mod(func(j *protocol.Job) { j.InventorySHA256 = sum([]byte("x")) }), nil), me, ReasonOtherInv},
		{"dev agent still checks device", &Policy{}, sign(t, mod(func(j *protocol.Job) { j.Device.Serial = "SN-2" }), nil), me, ReasonOtherDevice},
		{"dev agent still checks nonce", &Policy{}, sign(t, mod(func(j *protocol.Job) { j.Nonce = "x" }), nil), me, ReasonReplayed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := tt.p.VerifyJob(tt.sj, tt.want)
			if got := ReasonOf(err); got != tt.err {
				t.Fatalf("VerifyJob: reason %q (%v), want %q", got, err, tt.err)
			}
			if tt.err == "" && job.RunID != "run-1" {
				t.Fatalf("job = %+v", job)
			}
			if tt.err != "" && job.RunID != "" {
				t.Fatalf("refused job still returned: %+v", job)
			}
		})
	}
}

func TestRefusalMessage(t *testing.T) {
	pub, _ := genKey(t)
	p := &Policy{Key: pub}
	_, err := p.VerifyJob(sign(t, baseJob(), nil), me)
	msg := err.Error()
	if !strings.Contains(msg, "refused (unsigned)") || !strings.Contains(msg, p.KeyID()) {
		t.Fatalf("message %q does not say what and which key", msg)
	}
}

func TestLoad(t *testing.T) {
	pub, _ := genKey(t)
	write := func(root, path string, b []byte) {
		t.Helper()
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	caPEM := testCA(t)

	empty := t.TempDir()
	p, err := Load(empty)
	if err != nil || !p.Development() || p.Pinned() {
		t.Fatalf("empty root: %v %v", p, err)
	}
	if !strings.Contains(p.String(), "UNSIGNED DEVELOPMENT") {
		t.Fatalf("dev policy says %q", p.String())
	}

	full := t.TempDir()
	write(full, protocol.PubKeyPath, pubPEM(t, pub))
	write(full, protocol.CAPath, caPEM)
	p, err = Load(full)
	if err != nil || p.Development() || !p.Pinned() || !p.Key.Equal(pub) {
		t.Fatalf("full root: %+v %v", p, err)
	}

	// A damaged key must never turn the agent into a development agent.
	bad := t.TempDir()
	write(bad, protocol.PubKeyPath, []byte("truncated"))
	if _, err := Load(bad); err == nil {
		t.Fatal("damaged key accepted")
	}
	badCA := t.TempDir()
	write(badCA, protocol.CAPath, []byte("-----BEGIN NOTHING-----\n"))
	if _, err := Load(badCA); err == nil {
		t.Fatal("damaged CA accepted")
	}
}

func TestVerifyBytes(t *testing.T) {
	a := baseJob().Scenario
	if err := VerifyBytes("scenario", scenario, a); err != nil {
		t.Fatal(err)
	}
	swapped := bytes.Replace(scenario, []byte("test"), []byte("tset"), 1)
	if r := ReasonOf(VerifyBytes("scenario", swapped, a)); r != ReasonHashMismatch {
		t.Fatalf("swapped scenario: reason %q", r)
	}
	if r := ReasonOf(VerifyBytes("scenario", append(scenario, '\n'), a)); r != ReasonHashMismatch {
		t.Fatalf("longer scenario: reason %q", r)
	}
	a.SHA256 = ""
	if r := ReasonOf(VerifyBytes("scenario", scenario, a)); r != ReasonHashMismatch {
		t.Fatalf("no hash: reason %q", r)
	}
}

func TestPolicyString(t *testing.T) {
	pub, _ := genKey(t)
	p := &Policy{Key: pub}
	if s := p.String(); !strings.Contains(s, p.KeyID()) || strings.Contains(s, "UNSIGNED") {
		t.Fatalf("%q", s)
	}
}

func TestReasonOf(t *testing.T) {
	if ReasonOf(errors.New("x")) != "" || ReasonOf(nil) != "" {
		t.Fatal("non-refusal has a reason")
	}
	wrapped := errors.Join(errors.New("ctx"), &Refusal{Reason: ReasonExpired})
	if ReasonOf(wrapped) != ReasonExpired {
		t.Fatal("wrapped refusal lost")
	}
}

// FuzzVerifyJob feeds arbitrary bytes as a job from the network: it must never panic and never
// accept anything not signed by the operator key.
func FuzzVerifyJob(f *testing.F) {
	pub, priv := genKey(f)
	p := &Policy{Key: pub}
	good := sign(f, baseJob(), priv)
	f.Add(good.Job, good.Signature)
	f.Add([]byte(`{"run_id":"x"}`), []byte{})
	f.Add([]byte(`null`), make([]byte, 64))
	f.Fuzz(func(t *testing.T, job, sig []byte) {
		sj := &protocol.SignedJob{Job: job, Signature: sig}
		got, err := p.VerifyJob(sj, me)
		if err == nil && !ed25519.Verify(pub, job, sig) {
			t.Fatalf("accepted an unverified job %+v", got)
		}
		// A development agent parses anything without panicking.
		_, _ = (&Policy{}).VerifyJob(sj, me)
	})
}
