package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// KeyID names a public key by the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SignJob encodes job and signs the encoding with priv. A nil priv gives an unsigned job,
// which only development agents (built without a public key) accept.
func SignJob(job Job, priv ed25519.PrivateKey) (SignedJob, error) {
	b, err := json.Marshal(job)
	if err != nil {
		return SignedJob{}, fmt.Errorf("encode job: %w", err)
	}
	sj := SignedJob{Job: b}
	if priv != nil {
		sj.Signature = ed25519.Sign(priv, b)
		sj.KeyID = KeyID(priv.Public().(ed25519.PublicKey))
	}
	return sj, nil
}

// ErrUnsigned is returned by OpenJob when a key is required and the job carries no signature.
var ErrUnsigned = errors.New("job is not signed")

// OpenJob verifies sj against pub and decodes it. With a nil pub (a development agent built
// without a key) the signature is not checked.
func OpenJob(sj SignedJob, pub ed25519.PublicKey) (Job, error) {
	if pub != nil {
		if len(sj.Signature) == 0 {
			return Job{}, ErrUnsigned
		}
		if !ed25519.Verify(pub, sj.Job, sj.Signature) {
			return Job{}, fmt.Errorf("job signature does not verify with key %s (job says key %q)", KeyID(pub), sj.KeyID)
		}
	}
	var job Job
	if err := json.Unmarshal(sj.Job, &job); err != nil {
		return Job{}, fmt.Errorf("decode job: %w", err)
	}
	if job.RunID == "" {
		return Job{}, errors.New("job has no run id")
	}
	return job, nil
}
