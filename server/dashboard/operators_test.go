package dashboard_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/dashboard"
	"github.com/flashline/flashline/server/operatorauth"
	"github.com/flashline/flashline/server/store"
)

// The line's operators in these tests: the MES's token and the user ana.
const (
	testToken    = "mes-token-0123456789abcdefghijklmnopqrstuv"
	testPassword = "line pass 7"
)

func testGuard(t testing.TB, readOnlyOpen bool) *operatorauth.Guard {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), config.MinBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(testToken))
	g, err := operatorauth.New(operatorauth.Options{Operators: config.Operators{
		Tokens:       []config.OperatorToken{{Name: "mes", SHA256: hex.EncodeToString(sum[:])}},
		Users:        []config.OperatorUser{{Name: "ana", PasswordHash: string(h)}},
		ReadOnlyOpen: &readOnlyOpen,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// login logs the page in as ana through the login form and waits for the dashboard to be
// back with the operator shown.
func (b *browser) login(t *testing.T, base string) {
	t.Helper()
	// The marker goes with the old page: the form is looked for on the new one only.
	b.eval(t, `window.flOld = true; location.href = "`+base+`/dashboard/login?next=/", "ok"`)
	b.waitFor(t, `String(!window.flOld && !!document.querySelector('input[name="password"]'))`, "true")
	b.eval(t, `document.querySelector('input[name="name"]').value = "ana";
		document.querySelector('input[name="password"]').value = "`+testPassword+`";
		document.querySelector("form").submit(), "ok"`)
	b.waitFor(t, `(document.getElementById("operator") || {innerText: ""}).innerText`, "user:ana")
}

// passedDevice gives the line a device whose run passed: its next netboot is LOCALBOOT.
func passedDevice(t *testing.T, l *line, mac, serial string) {
	t.Helper()
	job := l.job(t, mac, serial)
	if _, err := l.client.PutResult(context.Background(), protocol.Result{RunID: job.RunID, Serial: serial, Status: protocol.StatusPass, Secret: l.secret(job.RunID)}); err != nil {
		t.Fatal(err)
	}
}

func post(t *testing.T, u string, h map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", u, nil)
	for k, v := range h {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The attack of issue 13: a reset needed no credential (and one whose Host equalled its
// Origin, DNS rebinding, was accepted). Now each attempt below is refused, the device stays
// on LOCALBOOT and the audit log stays empty; an operator's reset is made and logged.
func TestResetNeedsAnOperator(t *testing.T) {
	l := newLine(t)
	const mac = "52:54:00:00:00:21"
	passedDevice(t, l, mac, "S21")
	reset := l.srv.URL + "/dashboard/api/devices/" + mac + "/reset"
	wrongPass := &http.Request{Header: http.Header{}}
	wrongPass.SetBasicAuth("ana", "guess")
	for _, c := range []struct {
		name string
		h    map[string]string
		want int
	}{
		{"no credential", nil, http.StatusUnauthorized},
		{"no credential, same-origin page", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusUnauthorized},
		{"wrong password", map[string]string{"Authorization": wrongPass.Header.Get("Authorization")}, http.StatusUnauthorized},
		{"wrong token", map[string]string{"Authorization": "Bearer guessed"}, http.StatusUnauthorized},
		{"cross-site page with a credential", map[string]string{"Authorization": "Bearer " + testToken, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"rebound host name", map[string]string{"Authorization": "Bearer " + testToken, "Host": "evil.example:8080", "Origin": "http://evil.example:8080"}, http.StatusForbidden},
	} {
		if code := post(t, reset, c.h); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
		if lb, _ := l.store.LocalBoot(context.Background(), mac); !lb {
			t.Fatalf("%s: the refused reset changed the device", c.name)
		}
	}
	if log, _ := l.store.Audit(context.Background(), 10); len(log) != 0 {
		t.Fatalf("refused resets in the audit log: %+v", log)
	}
	if code := post(t, reset, map[string]string{"Authorization": "Bearer " + testToken}); code != http.StatusOK {
		t.Fatalf("operator's reset: %d", code)
	}
	if lb, _ := l.store.LocalBoot(context.Background(), mac); lb {
		t.Fatal("the operator's reset did not reach the store")
	}
	resp, err := http.Get(l.srv.URL + "/dashboard/api/audit")
	if err != nil {
		t.Fatal(err)
	}
	var log []store.AuditEntry
	json.NewDecoder(resp.Body).Decode(&log)
	resp.Body.Close()
	if len(log) != 1 || log[0].Actor != "token:mes" || log[0].Action != "reset" || log[0].MAC != mac ||
		log[0].Detail != "dashboard, from 127.0.0.1" || time.Since(log[0].Time) > time.Minute {
		t.Errorf("audit log: %+v, want the reset by token:mes", log)
	}
	if resp, _ := http.Get(l.srv.URL + "/dashboard/api/audit?limit=0"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("audit limit 0: %d", resp.StatusCode)
	}
}

// read_only_open: false: every view of the dashboard (page, API, exports, live stream,
// audit log) needs an operator; with one they answer.
func TestClosedViewsNeedAnOperator(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := dashboard.New(dashboard.Options{Store: st, Operators: testGuard(t, false)})
	ctx, cancel := context.WithCancel(context.Background())
	go d.Run(ctx)
	mux := http.NewServeMux()
	d.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer cancel()
	get := func(path string, h map[string]string) *http.Response {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		req, _ := http.NewRequestWithContext(rctx, "GET", srv.URL+path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // the live stream's body is never read to its end
		return resp
	}
	views := []string{"/", "/static/app.js", "/dashboard/api/devices", "/dashboard/api/history?serial=S1", "/dashboard/api/export?serial=S1",
		"/dashboard/api/export", "/dashboard/api/status", "/dashboard/api/figures", "/dashboard/api/audit", "/dashboard/events"}
	for _, v := range views {
		if resp := get(v, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a credential: %d, want 401", v, resp.StatusCode)
		}
		if resp := get(v, map[string]string{"Authorization": "Bearer " + testToken}); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s as an operator: %d, want 200", v, resp.StatusCode)
		}
	}
	if resp := get("/", map[string]string{"Accept": "text/html"}); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/dashboard/login?next="+url.QueryEscape("/") {
		t.Errorf("a browser on the closed page: %d %q, want the login form", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := get("/dashboard/login", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("login form: %d", resp.StatusCode)
	}
}

// In a real browser: a reset without a login is answered 401 and the page goes to the login
// form; after logging in the reset is made and the audit log names ana.
func TestOperatorLoginInChromium(t *testing.T) {
	l := newLine(t)
	const mac = "52:54:00:00:00:31"
	passedDevice(t, l, mac, "S31")
	b := startBrowser(t, l.srv.URL+"/")
	row := `(document.getElementById("dev-52:54:00:00:00:31") || {innerText: ""}).innerText`
	b.waitFor(t, row, "local disk")
	b.waitFor(t, `(document.querySelector("#operator a") || {textContent: ""}).textContent`, "operator log in")
	click := `window.confirm = () => true; document.querySelector('#dev-52\\:54\\:00\\:00\\:00\\:31 button.reset').click(), "ok"`
	b.eval(t, click)
	b.waitFor(t, `location.pathname`, "/dashboard/login")
	if lb, _ := l.store.LocalBoot(context.Background(), mac); !lb {
		t.Fatal("a reset without a login changed the device")
	}
	// A wrong password stays on the form with a message.
	b.eval(t, `document.querySelector('input[name="name"]').value = "ana";
		document.querySelector('input[name="password"]').value = "guess";
		document.querySelector("form").submit(), "ok"`)
	b.waitFor(t, `(document.querySelector(".err") || {textContent: ""}).textContent`, "Wrong name or password")
	b.login(t, l.srv.URL)
	b.waitFor(t, row, "local disk")
	b.eval(t, click)
	b.waitFor(t, row, "provision")
	if lb, _ := l.store.LocalBoot(context.Background(), mac); lb {
		t.Fatal("the logged-in reset did not reach the store")
	}
	log, _ := l.store.Audit(context.Background(), 10)
	if len(log) != 1 || log[0].Actor != "user:ana" || log[0].MAC != mac {
		t.Errorf("audit log: %+v, want ana's reset", log)
	}
	// The session cookie is HttpOnly: the page's scripts cannot read it.
	if c := b.eval(t, `document.cookie`); strings.Contains(c, operatorauth.CookieName) {
		t.Errorf("the page's script reads the session cookie: %q", c)
	}
}
