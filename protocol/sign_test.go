package protocol

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func TestSignOpenJob(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, otherPriv, _ := ed25519.GenerateKey(nil)
	_ = otherPub
	job := Job{RunID: "r1", Nonce: "n1", Device: Identity{Serial: "S1"}, Image: Artifact{URL: "http://x/i", SHA256: "ab", Size: 3}}

	signed, _ := SignJob(job, priv)
	byOther, _ := SignJob(job, otherPriv)
	unsigned, _ := SignJob(job, nil)
	tampered, _ := SignJob(job, priv)
	tampered.Job = []byte(strings.Replace(string(tampered.Job), `"S1"`, `"S2"`, 1))

	tests := []struct {
		name    string
		sj      SignedJob
		pub     ed25519.PublicKey
		wantErr string
	}{
		{"good", signed, pub, ""},
		{"other key", byOther, pub, "does not verify"},
		{"unsigned", unsigned, pub, ErrUnsigned.Error()},
		{"tampered", tampered, pub, "does not verify"},
		{"dev agent takes unsigned", unsigned, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OpenJob(tt.sj, tt.pub)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("OpenJob: %v", err)
				}
				if got.RunID != "r1" || got.Device.Serial != "S1" {
					t.Fatalf("decoded %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.wantErr == ErrUnsigned.Error() && !errors.Is(err, ErrUnsigned) {
				t.Fatalf("err = %v, want ErrUnsigned", err)
			}
		})
	}
}
