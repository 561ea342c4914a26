package operatorauth

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseAuthorization(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct {
		in   string
		want credential
		ok   bool
	}{
		{"", credential{}, true},
		{"Bearer abc-DEF_123.~+/==", credential{scheme: "bearer", token: "abc-DEF_123.~+/=="}, true},
		{"bearer  tok", credential{scheme: "bearer", token: "tok"}, true},
		{"Basic " + b64("ana:pa:ss"), credential{scheme: "basic", user: "ana", pass: "pa:ss"}, true},
		{"BASIC " + b64("ana:"), credential{scheme: "basic", user: "ana"}, true},
		{"Bearer", credential{}, false},
		{"Bearer ", credential{}, false},
		{"Bearer a b", credential{}, false},
		{"Bearer ===", credential{}, false},
		{"Bearer t\x00", credential{}, false},
		{"Basic " + b64("nocolon"), credential{}, false},
		{"Basic " + b64(":pw"), credential{}, false},
		{"Basic " + b64("a\nb:pw"), credential{}, false},
		{"Basic !!!", credential{}, false},
		{"Digest username=x", credential{}, false},
		{"Bearer " + strings.Repeat("a", maxAuthorization), credential{}, false},
	} {
		got, ok := parseAuthorization(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("parseAuthorization(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestHostName(t *testing.T) {
	for in, want := range map[string]string{
		"line-server.local:8080": "line-server.local",
		"Line-Server.LOCAL.":     "line-server.local",
		"10.0.0.1":               "10.0.0.1",
		"10.0.0.1:80":            "10.0.0.1",
		"[fe80::1]:8080":         "fe80::1",
		"[::1]":                  "::1",
		"fe80::1":                "fe80::1",
		"":                       "",
	} {
		if got := hostName(in); got != want {
			t.Errorf("hostName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/":                 "/",
		"/#serial=S1":       "/#serial=S1",
		"/dashboard/api/x":  "/dashboard/api/x",
		"":                  "/",
		"//evil.example/":   "/",
		"/\\evil.example":   "/",
		"https://evil.test": "/",
		"/a\r\nSet-Cookie:": "/",
		"javascript:x":      "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// The Authorization header is outside input: whatever it holds, parsing neither panics nor
// yields a credential that is not in it, and what is accepted reads back the same.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"", "Bearer tok", "Basic YW5hOnB3", "Basic ", "bearer ==", "Basic OnB3", "x y z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		c, ok := parseAuthorization(h)
		if !ok {
			if c != (credential{}) {
				t.Fatalf("refused header %q returned %+v", h, c)
			}
			return
		}
		switch c.scheme {
		case "":
			if h != "" {
				t.Fatalf("header %q accepted as no credential", h)
			}
		case "bearer":
			if !isToken68(c.token) || !strings.HasSuffix(h, c.token) {
				t.Fatalf("bearer %q from %q", c.token, h)
			}
		case "basic":
			if c.user == "" || strings.Contains(c.user, ":") || hasControl(c.user) || hasControl(c.pass) {
				t.Fatalf("basic %+v from %q", c, h)
			}
		default:
			t.Fatalf("scheme %q from %q", c.scheme, h)
		}
	})
}

// Host headers and post-login redirects are outside input too: no panic, a redirect never
// leaves the server, a host name is lower case without a port.
func FuzzHostAndNext(f *testing.F) {
	for _, s := range []string{"a:1", "[::1]:2", "//x", "/ok", "A.B."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n := safeNext(s); n[0] != '/' || strings.HasPrefix(n, "//") || strings.ContainsAny(n, "\r\n\\") {
			t.Fatalf("safeNext(%q) = %q leaves the server", s, n)
		}
		if h := hostName(s); h != strings.ToLower(h) || len(h) > len(s)*3 {
			t.Fatalf("hostName(%q) = %q", s, h)
		}
	})
}
