package operatorauth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/flashline/flashline/server/config"
)

const (
	testToken    = "mes-token-0123456789abcdefghijklmnopqrstuv"
	testPassword = "line pass 7"
)

func testOperators(t testing.TB) config.Operators {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), config.MinBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(testToken))
	return config.Operators{
		Tokens: []config.OperatorToken{{Name: "mes", SHA256: hex.EncodeToString(sum[:])}},
		Users:  []config.OperatorUser{{Name: "ana", PasswordHash: string(h)}},
	}
}

// site is a guard in front of a view and an action that record who called them.
type site struct {
	srv   *httptest.Server
	g     *Guard
	mu    sync.Mutex
	calls []string // "view:ACTOR", "action:ACTOR"
	clock time.Time
}

func newSite(t *testing.T, ops config.Operators, publicURL string) *site {
	t.Helper()
	s := &site{clock: time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)}
	g, err := New(Options{Operators: ops, PublicURL: publicURL, Now: func() time.Time {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.clock
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.g = g
	rec := func(kind string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			s.calls = append(s.calls, kind+":"+Actor(r.Context()))
			s.mu.Unlock()
			io.WriteString(w, "ok")
		})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", g.View(rec("view")))
	mux.Handle("GET /dashboard/api/devices", g.View(rec("view")))
	mux.Handle("POST /dashboard/api/devices/{mac}/reset", g.Action(rec("action")))
	g.Register(mux)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *site) advance(d time.Duration) {
	s.mu.Lock()
	s.clock = s.clock.Add(d)
	s.mu.Unlock()
}

func (s *site) takeCalls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

// do sends a request with headers ("Host" sets the Host header) and returns the status.
func (s *site) do(t *testing.T, method, path string, h map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, nil)
	for k, v := range h {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// login posts the form and returns the session cookie.
func (s *site) login(t *testing.T, name, password string) (*http.Response, *http.Cookie) {
	t.Helper()
	form := url.Values{"name": {name}, "password": {password}, "next": {"/#serial=S1"}}
	req, _ := http.NewRequest("POST", s.srv.URL+"/dashboard/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.srv.URL)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == CookieName {
			return resp, ck
		}
	}
	return resp, nil
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// Each attack on an operator action, and the credentials that pass.
func TestActionNeedsAnOperator(t *testing.T) {
	s := newSite(t, testOperators(t), "")
	reset := "/dashboard/api/devices/52:54:00:00:00:01/reset"
	for _, c := range []struct {
		name string
		h    map[string]string
		want int
	}{
		{"no credential", nil, http.StatusUnauthorized},
		{"wrong bearer token", map[string]string{"Authorization": "Bearer not-the-token"}, http.StatusUnauthorized},
		{"the token's hash as the token", map[string]string{"Authorization": "Bearer " + testOperators(t).Tokens[0].SHA256}, http.StatusUnauthorized},
		{"wrong password", map[string]string{"Authorization": basic("ana", "guess")}, http.StatusUnauthorized},
		{"unknown user", map[string]string{"Authorization": basic("bob", testPassword)}, http.StatusUnauthorized},
		{"made-up session cookie", map[string]string{"Cookie": CookieName + "=forged"}, http.StatusUnauthorized},
		{"malformed Authorization", map[string]string{"Authorization": "Basic !!"}, http.StatusUnauthorized},
		{"cross-site page with the token", map[string]string{"Authorization": "Bearer " + testToken, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"other origin with the token", map[string]string{"Authorization": "Bearer " + testToken, "Origin": "http://evil.example"}, http.StatusForbidden},
		// DNS rebinding: the attacker's name resolves to the server, so Origin and Host agree.
		{"rebound host name", map[string]string{"Authorization": "Bearer " + testToken, "Host": "evil.example:8080", "Origin": "http://evil.example:8080"}, http.StatusForbidden},
		{"rebound host name, no Origin", map[string]string{"Authorization": "Bearer " + testToken, "Host": "evil.example"}, http.StatusForbidden},
	} {
		if resp := s.do(t, "POST", reset, c.h); resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if calls := s.takeCalls(); len(calls) != 0 {
			t.Errorf("%s: the action ran (%v)", c.name, calls)
		}
	}
	for _, c := range []struct {
		name  string
		h     map[string]string
		actor string
	}{
		{"bearer token", map[string]string{"Authorization": "Bearer " + testToken}, "token:mes"},
		{"basic auth", map[string]string{"Authorization": basic("ana", testPassword), "Sec-Fetch-Site": "same-origin"}, "user:ana"},
		{"IP literal host", map[string]string{"Authorization": "Bearer " + testToken, "Host": "10.0.0.1:8080", "Origin": "http://10.0.0.1:8080"}, "token:mes"},
		{"localhost", map[string]string{"Authorization": "Bearer " + testToken, "Host": "localhost:8080"}, "token:mes"},
	} {
		if resp := s.do(t, "POST", reset, c.h); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d, want 200", c.name, resp.StatusCode)
		}
		if calls := s.takeCalls(); len(calls) != 1 || calls[0] != "action:"+c.actor {
			t.Errorf("%s: calls %v, want the action by %s", c.name, calls, c.actor)
		}
	}
}

// The host allow-list: public_url's host and operators.allowed_hosts are served, other names
// refused on views and the login form too (a rebound page must not read the line either).
func TestAllowedHosts(t *testing.T) {
	ops := testOperators(t)
	ops.AllowedHosts = []string{"Line-1.plant.example"}
	s := newSite(t, ops, "http://flashline.local:8080")
	for host, want := range map[string]int{
		"line-1.plant.example":      http.StatusOK,
		"line-1.plant.example.:80":  http.StatusOK,
		"flashline.local:8080":      http.StatusOK,
		"10.1.2.3":                  http.StatusOK,
		"[fe80::1]:8080":            http.StatusOK,
		"evil.example":              http.StatusForbidden,
		"line-1.plant.example.evil": http.StatusForbidden,
	} {
		for _, path := range []string{"/dashboard/api/devices", "/dashboard/login", "/dashboard/api/whoami"} {
			resp := s.do(t, "GET", path, map[string]string{"Host": host})
			if resp.StatusCode != want {
				t.Errorf("GET %s with Host %s: %d, want %d", path, host, resp.StatusCode, want)
			}
			if resp.Header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("GET %s may be framed by another site", path)
			}
		}
	}
}

// No operator configured: views open, every action refused with a message saying why.
func TestNoOperatorsNoActions(t *testing.T) {
	s := newSite(t, config.Operators{}, "")
	req, _ := http.NewRequest("POST", s.srv.URL+"/dashboard/api/devices/52:54:00:00:00:01/reset", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body.Error, "flashline-server reset") {
		t.Errorf("reset with no operators configured: %d %q", resp.StatusCode, body.Error)
	}
	if resp := s.do(t, "GET", "/dashboard/api/devices", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("view: %d", resp.StatusCode)
	}
	if calls := s.takeCalls(); len(calls) != 1 || calls[0] != "view:" {
		t.Errorf("calls %v", calls)
	}
}

// read_only_open: false closes the views: the API answers 401, a browser is sent to the
// login form, an operator sees them.
func TestClosedViews(t *testing.T) {
	ops := testOperators(t)
	closed := false
	ops.ReadOnlyOpen = &closed
	s := newSite(t, ops, "")
	if resp := s.do(t, "GET", "/dashboard/api/devices", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("closed view without a credential: %d, want 401", resp.StatusCode)
	}
	if resp := s.do(t, "GET", "/dashboard/api/devices", map[string]string{"Authorization": basic("ana", "guess")}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("closed view with a wrong password: %d, want 401", resp.StatusCode)
	}
	resp := s.do(t, "GET", "/", map[string]string{"Accept": "text/html,application/xhtml+xml"})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/dashboard/login?next=") {
		t.Errorf("browser on a closed page: %d %q, want a redirect to the login form", resp.StatusCode, resp.Header.Get("Location"))
	}
	if calls := s.takeCalls(); len(calls) != 0 {
		t.Fatalf("closed views answered: %v", calls)
	}
	if resp := s.do(t, "GET", "/dashboard/api/devices", map[string]string{"Authorization": "Bearer " + testToken}); resp.StatusCode != http.StatusOK {
		t.Errorf("operator on a closed view: %d", resp.StatusCode)
	}
	if resp := s.do(t, "GET", "/dashboard/login", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the login form must stay open: %d", resp.StatusCode)
	}
	if calls := s.takeCalls(); len(calls) != 1 || calls[0] != "view:token:mes" {
		t.Errorf("calls %v", calls)
	}
}

// The login form: a wrong password sets no cookie; the right one sets an HttpOnly,
// SameSite=Strict cookie that authorises actions from the same origin only, until logout or
// its expiry.
func TestLoginSession(t *testing.T) {
	s := newSite(t, testOperators(t), "")
	if resp, ck := s.login(t, "ana", "guess"); resp.StatusCode != http.StatusUnauthorized || ck != nil {
		t.Fatalf("wrong password: %d, cookie %v", resp.StatusCode, ck)
	}
	resp, ck := s.login(t, "ana", testPassword)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/#serial=S1" || ck == nil {
		t.Fatalf("login: %d %q, cookie %v", resp.StatusCode, resp.Header.Get("Location"), ck)
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/", ck)
	}
	reset := "/dashboard/api/devices/52:54:00:00:00:01/reset"
	cookie := CookieName + "=" + ck.Value
	if resp := s.do(t, "POST", reset, map[string]string{"Cookie": cookie, "Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("CSRF: a cross-origin POST carrying the session: %d, want 403", resp.StatusCode)
	}
	if resp := s.do(t, "POST", reset, map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-site"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("CSRF: a same-site (other port or subdomain) POST carrying the session: %d, want 403", resp.StatusCode)
	}
	if calls := s.takeCalls(); len(calls) != 0 {
		t.Fatalf("CSRF reached the action: %v", calls)
	}
	if resp := s.do(t, "POST", reset, map[string]string{"Cookie": cookie, "Origin": s.srv.URL}); resp.StatusCode != http.StatusOK {
		t.Errorf("same-origin reset with the session: %d", resp.StatusCode)
	}
	if calls := s.takeCalls(); len(calls) != 1 || calls[0] != "action:user:ana" {
		t.Errorf("calls %v", calls)
	}
	// whoami says who is logged in.
	req, _ := http.NewRequest("GET", s.srv.URL+"/dashboard/api/whoami", nil)
	req.Header.Set("Cookie", cookie)
	wresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var who WhoAmI
	json.NewDecoder(wresp.Body).Decode(&who)
	wresp.Body.Close()
	if who != (WhoAmI{Actor: "user:ana", Operators: true, ReadOnlyOpen: true}) {
		t.Errorf("whoami: %+v", who)
	}
	// Expiry.
	s.advance(config.DefaultSessionTTL + time.Second)
	if resp := s.do(t, "POST", reset, map[string]string{"Cookie": cookie}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired session: %d, want 401", resp.StatusCode)
	}
	// Logout ends a session at once.
	_, ck = s.login(t, "ana", testPassword)
	cookie = CookieName + "=" + ck.Value
	if resp := s.do(t, "POST", "/dashboard/logout", map[string]string{"Cookie": cookie, "Origin": s.srv.URL}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	if resp := s.do(t, "POST", reset, map[string]string{"Cookie": cookie}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("session after logout: %d, want 401", resp.StatusCode)
	}
	// Login CSRF: another site's form logging the browser in.
	form := url.Values{"name": {"ana"}, "password": {testPassword}}
	lreq, _ := http.NewRequest("POST", s.srv.URL+"/dashboard/login", strings.NewReader(form.Encode()))
	lreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	lreq.Header.Set("Origin", "http://evil.example")
	lresp, err := http.DefaultClient.Do(lreq)
	if err != nil {
		t.Fatal(err)
	}
	lresp.Body.Close()
	if lresp.StatusCode != http.StatusForbidden || len(lresp.Cookies()) != 0 {
		t.Errorf("cross-site login: %d %v, want 403 and no cookie", lresp.StatusCode, lresp.Cookies())
	}
}

// Guessing: after maxFails wrong credentials from one address, even the right one is
// refused for the rest of the window.
func TestGuessingThrottled(t *testing.T) {
	s := newSite(t, testOperators(t), "")
	reset := "/dashboard/api/devices/52:54:00:00:00:01/reset"
	for i := range maxFails {
		if resp := s.do(t, "POST", reset, map[string]string{"Authorization": basic("ana", "guess")}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i+1, resp.StatusCode)
		}
	}
	for _, h := range []string{basic("ana", testPassword), "Bearer " + testToken} {
		resp := s.do(t, "POST", reset, map[string]string{"Authorization": h})
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Errorf("after %d guesses: %d, want 429 with Retry-After", maxFails, resp.StatusCode)
		}
	}
	if resp, _ := s.login(t, "ana", testPassword); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("login form after %d guesses: %d, want 429", maxFails, resp.StatusCode)
	}
	if calls := s.takeCalls(); len(calls) != 0 {
		t.Fatalf("calls %v", calls)
	}
	s.advance(failWindow)
	if resp := s.do(t, "POST", reset, map[string]string{"Authorization": "Bearer " + testToken}); resp.StatusCode != http.StatusOK {
		t.Errorf("after the window: %d", resp.StatusCode)
	}
}

// Sessions are bounded: logging in over and over keeps at most maxSessions.
func TestSessionsBounded(t *testing.T) {
	g, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := g.newSession("user:a")
	for range maxSessions + 10 {
		g.newSession("user:b")
	}
	if n := len(g.sessions); n > maxSessions {
		t.Fatalf("%d sessions held, want at most %d", n, maxSessions)
	}
	if _, ok := g.session(first); ok {
		t.Error("the oldest session survived the overflow")
	}
}
