package protocol

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// RunSecretBytes is the entropy of a run secret: 256 bits, so a secret cannot be guessed and
// its SHA-256 alone may be stored (no slow password hash is needed for a random token).
const RunSecretBytes = 32

// NewRunSecret returns a fresh run secret, base64url without padding (43 characters).
func NewRunSecret() (string, error) {
	b := make([]byte, RunSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("run secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashRunSecret is what the server stores of a run secret: hex SHA-256 of its text.
func HashRunSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// BearerHeader is the Authorization header value for a token.
func BearerHeader(token string) string { return "Bearer " + token }

// maxTokenLen bounds a bearer token; run secrets are 43 characters, operator tokens are
// configured and short. Anything longer is refused before it is hashed or compared.
const maxTokenLen = 512

// ParseBearer returns the token of an "Authorization: Bearer <token>" header value (RFC 6750:
// the scheme is case-insensitive; the token is base64url-ish printable ASCII). ok is false
// for an empty value, another scheme, or a malformed token.
func ParseBearer(v string) (token string, ok bool) {
	scheme, tok, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || len(tok) > maxTokenLen {
		return "", false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		// RFC 6750 b64token: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" followed by "="s.
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=') {
			return "", false
		}
	}
	if i := strings.IndexByte(tok, '='); i >= 0 && strings.Trim(tok[i:], "=") != "" {
		return "", false
	}
	return tok, true
}

// InventoryHash is the canonical hash of an inventory: hex SHA-256 of its encoding/json
// encoding as the server sees it, i.e. json.Marshal of the Inventory decoded from the hello.
// The agent gets the same bytes by encoding, decoding and encoding again: the one round trip
// turns what does not survive JSON (invalid UTF-8 in a DMI string from a sloppy firmware,
// which encoding/json writes as the escape \ufffd but decodes to the raw character) into
// what the server holds. Whitespace and field order on the wire do not matter; a field one
// side does not know does (a newer agent's extra field changes its hash), which is why
// inventory fields are only added together with a server that knows them.
func InventoryHash(inv Inventory) (string, error) {
	b, err := json.Marshal(inv)
	if err != nil {
		return "", fmt.Errorf("inventory hash: %w", err)
	}
	var back Inventory
	if err := json.Unmarshal(b, &back); err != nil {
		return "", fmt.Errorf("inventory hash: %w", err)
	}
	if b, err = json.Marshal(back); err != nil {
		return "", fmt.Errorf("inventory hash: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
