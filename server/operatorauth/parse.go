package operatorauth

import (
	"encoding/base64"
	"strings"
)

// maxAuthorization bounds the Authorization header parsed: a bearer token is 43 characters
// and basic credentials a few dozen; anything longer is refused before it is decoded.
const maxAuthorization = 1024

// credential is what an Authorization header carries.
type credential struct {
	scheme string // "bearer" or "basic"; "" when the header is absent
	token  string // bearer
	user   string // basic
	pass   string // basic
}

// parseAuthorization reads an Authorization header value: "Bearer TOKEN" or "Basic
// base64(user:password)", the scheme in any case. ok is false for a header that is present
// but unusable (another scheme, bad base64, no colon, control characters, too long): such a
// request is refused, never treated as one without a credential.
func parseAuthorization(h string) (c credential, ok bool) {
	if h == "" {
		return credential{}, true
	}
	if len(h) > maxAuthorization {
		return credential{}, false
	}
	scheme, rest, found := strings.Cut(h, " ")
	if !found {
		return credential{}, false
	}
	rest = strings.TrimLeft(rest, " ")
	switch strings.ToLower(scheme) {
	case "bearer":
		if !isToken68(rest) {
			return credential{}, false
		}
		return credential{scheme: "bearer", token: rest}, true
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return credential{}, false
		}
		user, pass, found := strings.Cut(string(raw), ":")
		if !found || user == "" || hasControl(user) || hasControl(pass) {
			return credential{}, false
		}
		return credential{scheme: "basic", user: user, pass: pass}, true
	}
	return credential{}, false
}

// isToken68 is RFC 7235's token68: what a bearer token may be made of.
func isToken68(s string) bool {
	if s == "" {
		return false
	}
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := range end {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// hostName is the Host header without its port, lower case, without a trailing dot;
// IPv6 literals lose their brackets.
func hostName(host string) string {
	h := host
	if strings.HasPrefix(h, "[") {
		if i := strings.Index(h, "]"); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.Count(h, ":") == 1 {
		h = h[:i]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// safeNext keeps a post-login redirect on this server: a path, not "//host" or a URL.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n\\") {
		return "/"
	}
	return next
}
