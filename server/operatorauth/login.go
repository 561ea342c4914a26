package operatorauth

import (
	"errors"
	"html/template"
	"net/http"
	"time"
)

// loginPage is the whole login form: no script, no external file, so it works with the
// views closed and in any browser.
var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Flashline: operator login</title>
<style>body{font:16px system-ui,sans-serif;max-width:22em;margin:4em auto;padding:0 1em}
label,input,button{display:block;width:100%;box-sizing:border-box;margin:.3em 0}input{padding:.4em}
button{padding:.5em;margin-top:1em}.err{color:#b00020}</style></head>
<body><h1>Operator login</h1>
{{if .Actor}}<p>Logged in as <b>{{.Actor}}</b>.</p>
<form method="post" action="/dashboard/logout"><button>Log out</button></form><p><a href="/">Back to the dashboard</a></p>
{{else}}{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
{{if .Users}}<form method="post" action="/dashboard/login">
<input type="hidden" name="next" value="{{.Next}}">
<label>Name <input name="name" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button>Log in</button></form>
{{else}}<p>No operator users are configured on this server (operators.users in server.yaml).</p>{{end}}
<p><a href="/">Back to the dashboard</a></p>{{end}}
</body></html>
`))

type loginData struct {
	Actor, Error, Next string
	Users              bool
}

// Register adds the login routes: the form (GET and POST /dashboard/login), logout (POST
// /dashboard/logout) and who the caller is (GET /dashboard/api/whoami).
func (g *Guard) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /dashboard/login", g.loginForm)
	mux.HandleFunc("POST /dashboard/login", g.login)
	mux.HandleFunc("POST /dashboard/logout", g.logout)
	mux.HandleFunc("GET /dashboard/api/whoami", g.whoami)
}

func (g *Guard) page(w http.ResponseWriter, code int, d loginData) {
	d.Users = len(g.users) > 0
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The form must not be framed by another site (clickjacking a login).
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(code)
	loginPage.Execute(w, d)
}

func (g *Guard) loginForm(w http.ResponseWriter, r *http.Request) {
	if !g.checkHost(w, r) {
		return
	}
	// Only the cookie tells the form who is logged in: no password is checked here.
	actor := ""
	if ck, err := r.Cookie(CookieName); err == nil {
		actor, _ = g.session(ck.Value)
	}
	g.page(w, http.StatusOK, loginData{Actor: actor, Next: safeNext(r.URL.Query().Get("next"))})
}

// login checks a name and password from the form and sets the login cookie: HttpOnly (no
// script reads it), SameSite=Strict (no other site's page sends it), Secure over HTTPS.
func (g *Guard) login(w http.ResponseWriter, r *http.Request) {
	if !g.checkHost(w, r) {
		return
	}
	// Login CSRF (another site logging the operator's browser in as someone else) is refused
	// like any other cross-site action.
	if err := g.cop.Check(r); err != nil {
		g.refuse(w, r, http.StatusForbidden, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		g.page(w, http.StatusBadRequest, loginData{Error: "unreadable form"})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if g.throttled(r) {
		w.Header().Set("Retry-After", "300")
		g.page(w, http.StatusTooManyRequests, loginData{Error: errTooManyFails.Error(), Next: next})
		return
	}
	name, pass := r.PostForm.Get("name"), r.PostForm.Get("password")
	actor, err := g.checkPassword(r.Context(), name, pass)
	if err != nil {
		code := http.StatusUnauthorized
		if errors.Is(err, errBusy) {
			code = http.StatusServiceUnavailable
		} else {
			g.failed(r)
		}
		g.log.Warn("operator login refused", "name", name, "remote", r.RemoteAddr, "err", err)
		msg := "Wrong name or password."
		if code != http.StatusUnauthorized {
			msg = err.Error()
		}
		g.page(w, code, loginData{Error: msg, Next: next})
		return
	}
	tok := g.newSession(actor)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(g.ttl / time.Second)})
	g.log.Info("operator logged in", "actor", actor, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (g *Guard) logout(w http.ResponseWriter, r *http.Request) {
	if !g.checkHost(w, r) {
		return
	}
	if err := g.cop.Check(r); err != nil {
		g.refuse(w, r, http.StatusForbidden, err)
		return
	}
	if ck, err := r.Cookie(CookieName); err == nil {
		g.endSession(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// WhoAmI is what /dashboard/api/whoami answers.
type WhoAmI struct {
	// Actor is the caller's operator identity, "" when it sent none (or a wrong one).
	Actor string `json:"actor"`
	// Operators: the server has operator credentials, so actions are possible at all.
	Operators bool `json:"operators"`
	// ReadOnlyOpen: views need no credential.
	ReadOnlyOpen bool `json:"read_only_open"`
}

func (g *Guard) whoami(w http.ResponseWriter, r *http.Request) {
	if !g.checkHost(w, r) {
		return
	}
	actor := ""
	if !g.throttled(r) {
		var err error
		if actor, err = g.authenticate(r); errors.Is(err, errBadCredential) {
			g.failed(r)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, WhoAmI{Actor: actor, Operators: g.Configured(), ReadOnlyOpen: g.readOnlyOpen})
}
