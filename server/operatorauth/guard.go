// Package operatorauth decides who may change the line through the dashboard: it
// authenticates operators (bearer tokens, users with bcrypt-hashed passwords, trusted client
// certificate common names), keeps their dashboard logins, refuses state-changing requests
// from other sites' pages (CSRF) and requests for host names the server is not (DNS
// rebinding), and can close the read-only views to everyone but operators. The dashboard
// wraps its routes with View and Action; Actor tells a handler who acts, for the audit log.
package operatorauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/flashline/flashline/server/config"
)

// CookieName is the dashboard login's cookie.
const CookieName = "flashline_session"

// Bounds on what unauthenticated clients can make the guard hold or compute.
const (
	maxSessions      = 4096
	maxTracked       = 4096 // addresses with recent failed attempts
	failWindow       = 5 * time.Minute
	maxFails         = 10 // failed attempts of one address per failWindow before 429
	bcryptConcurrent = 2  // password checks at once: each is ~50-100 ms of a core
)

// Options configures a Guard.
type Options struct {
	Operators config.Operators
	// PublicURL is the server's http.public_url; its host is always allowed.
	PublicURL string
	Logger    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Guard authenticates and authorises dashboard requests. The zero configuration (no
// operators) leaves views open and refuses every action.
type Guard struct {
	log          *slog.Logger
	now          func() time.Time
	readOnlyOpen bool
	ttl          time.Duration
	hosts        map[string]bool
	tokens       []namedHash
	users        map[string][]byte // name -> bcrypt hash
	dummy        []byte            // a hash checked for unknown users, so timing tells nothing
	cns          map[string]bool
	cop          *http.CrossOriginProtection
	sem          chan struct{}

	mu       sync.Mutex
	sessions map[[32]byte]session
	fails    map[string]failures
}

type namedHash struct {
	name string
	hash [32]byte
}

type session struct {
	actor   string
	expires time.Time
}

type failures struct {
	n     int
	since time.Time
}

// New returns a guard for the configuration. Hashes are checked by config's validation; New
// refuses what it cannot use all the same.
func New(o Options) (*Guard, error) {
	op := o.Operators
	g := &Guard{log: o.Logger, now: o.Now, readOnlyOpen: op.ReadOnlyOpen == nil || *op.ReadOnlyOpen,
		ttl: op.SessionTTL, hosts: map[string]bool{"localhost": true}, users: map[string][]byte{}, cns: map[string]bool{},
		cop: http.NewCrossOriginProtection(), sem: make(chan struct{}, bcryptConcurrent),
		sessions: map[[32]byte]session{}, fails: map[string]failures{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.ttl <= 0 {
		g.ttl = config.DefaultSessionTTL
	}
	for _, h := range op.AllowedHosts {
		g.hosts[hostName(h)] = true
	}
	if o.PublicURL != "" {
		if u, err := url.Parse(o.PublicURL); err == nil && u.Host != "" {
			g.hosts[hostName(u.Host)] = true
		}
	}
	for _, t := range op.Tokens {
		b, err := hex.DecodeString(t.SHA256)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("operator token %q: sha256: want 64 hex digits", t.Name)
		}
		g.tokens = append(g.tokens, namedHash{name: t.Name, hash: [32]byte(b)})
	}
	maxCost := config.MinBcryptCost
	for _, u := range op.Users {
		cost, err := bcrypt.Cost([]byte(u.PasswordHash))
		if err != nil {
			return nil, fmt.Errorf("operator user %q: password_hash: %w", u.Name, err)
		}
		maxCost = max(maxCost, cost)
		g.users[u.Name] = []byte(u.PasswordHash)
	}
	if len(g.users) > 0 {
		pw := make([]byte, 16)
		rand.Read(pw)
		d, err := bcrypt.GenerateFromPassword(pw, maxCost)
		if err != nil {
			return nil, fmt.Errorf("operator users: %w", err)
		}
		g.dummy = d
	}
	for _, cn := range op.ClientCertCNs {
		g.cns[cn] = true
	}
	return g, nil
}

// Configured reports whether any operator credential exists: without one, no action is
// possible from the dashboard.
func (g *Guard) Configured() bool {
	return len(g.tokens) > 0 || len(g.users) > 0 || len(g.cns) > 0
}

// ConfigureTLS makes an HTTPS server ask for (but not require) client certificates issued by
// the CAs in caFile: devices have none, operators' browsers or scripts may.
func ConfigureTLS(tc *tls.Config, caFile string) error {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("operators.client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("operators.client_ca %s: no PEM certificate in it", caFile)
	}
	tc.ClientCAs = pool
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	return nil
}

type actorKey struct{}

// Actor is who is acting in a request that passed Action (or an authenticated View):
// "user:NAME", "token:NAME" or "cert:CN"; "" for an anonymous view.
func Actor(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// Why a request is refused.
var (
	errNoCredential  = errors.New("an operator credential is needed: log in at /dashboard/login, or send Authorization: Bearer TOKEN")
	errBadCredential = errors.New("wrong operator credential")
	errNoOperators   = errors.New("no operator credentials are configured on this server (operators: in server.yaml), so the dashboard cannot change anything: use flashline-server reset on the line host")
	errTooManyFails  = errors.New("too many failed attempts from this address: wait a few minutes")
	errBusy          = errors.New("too many password checks at once: try again")
)

// authenticate finds the operator behind r: a verified client certificate, the
// Authorization header, or the login cookie. A credential that is present but wrong is an
// error, never anonymous.
func (g *Guard) authenticate(r *http.Request) (string, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; g.cns[cn] {
			return "cert:" + cn, nil
		}
	}
	h := r.Header.Values("Authorization")
	if len(h) > 1 {
		return "", errBadCredential
	}
	c, ok := parseAuthorization(r.Header.Get("Authorization"))
	if !ok {
		return "", errBadCredential
	}
	switch c.scheme {
	case "bearer":
		if name, ok := g.checkToken(c.token); ok {
			return "token:" + name, nil
		}
		return "", errBadCredential
	case "basic":
		return g.checkPassword(r.Context(), c.user, c.pass)
	}
	if ck, err := r.Cookie(CookieName); err == nil {
		if a, ok := g.session(ck.Value); ok {
			return a, nil
		}
		return "", errBadCredential
	}
	return "", errNoCredential
}

func (g *Guard) checkToken(tok string) (string, bool) {
	sum := sha256.Sum256([]byte(tok))
	found := ""
	for _, t := range g.tokens {
		// Every token is compared, whichever matches: the time taken says nothing.
		if subtle.ConstantTimeCompare(sum[:], t.hash[:]) == 1 {
			found = t.name
		}
	}
	return found, found != ""
}

func (g *Guard) checkPassword(ctx context.Context, user, pass string) (string, error) {
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return "", errBusy
	case <-time.After(5 * time.Second):
		return "", errBusy
	}
	defer func() { <-g.sem }()
	hash, known := g.users[user]
	if !known {
		if g.dummy != nil {
			bcrypt.CompareHashAndPassword(g.dummy, []byte(pass))
		}
		return "", errBadCredential
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return "", errBadCredential
	}
	return "user:" + user, nil
}

func sessionKey(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

func (g *Guard) session(tok string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := sessionKey(tok)
	s, ok := g.sessions[k]
	if !ok {
		return "", false
	}
	if !g.now().Before(s.expires) {
		delete(g.sessions, k)
		return "", false
	}
	return s.actor, true
}

// newSession returns a fresh login token for actor; only its hash is kept.
func (g *Guard) newSession(actor string) string {
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sessions) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, s := range g.sessions {
			if !now.Before(s.expires) {
				delete(g.sessions, k)
				continue
			}
			if at.IsZero() || s.expires.Before(at) {
				oldest, at = k, s.expires
			}
		}
		if len(g.sessions) >= maxSessions {
			delete(g.sessions, oldest)
		}
	}
	g.sessions[sessionKey(tok)] = session{actor: actor, expires: now.Add(g.ttl)}
	return tok
}

func (g *Guard) endSession(tok string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.sessions, sessionKey(tok))
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttled reports whether r's address has failed too often lately.
func (g *Guard) throttled(r *http.Request) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.fails[remoteIP(r)]
	return ok && f.n >= maxFails && g.now().Sub(f.since) < failWindow
}

func (g *Guard) failed(r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ip, now := remoteIP(r), g.now()
	f, ok := g.fails[ip]
	if !ok || now.Sub(f.since) >= failWindow {
		if len(g.fails) >= maxTracked {
			clear(g.fails)
		}
		f = failures{since: now}
	}
	f.n++
	g.fails[ip] = f
}

// hostAllowed: IP literals (a rebinding attack needs a name), localhost, public_url's host
// and operators.allowed_hosts.
func (g *Guard) hostAllowed(host string) bool {
	h := hostName(host)
	if h == "" {
		return true // HTTP/1.0 without Host: not a browser, nothing to rebind
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return g.hosts[h]
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if code == http.StatusUnauthorized {
		// Bearer, not Basic: a Basic challenge would pop up the browser's own login dialog
		// over the dashboard's.
		w.Header().Set("WWW-Authenticate", `Bearer realm="flashline operators"`)
	}
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, code int, err error) {
	g.log.Warn("operator request refused", "code", code, "method", r.Method, "path", r.URL.Path, "host", r.Host, "remote", r.RemoteAddr, "err", err)
	writeError(w, code, err.Error())
}

// checkHost refuses a request for a host name this server is not. It also forbids framing
// every dashboard answer: another site must not overlay the reset button (clickjacking).
func (g *Guard) checkHost(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Set("X-Frame-Options", "DENY")
	if g.hostAllowed(r.Host) {
		return true
	}
	g.refuse(w, r, http.StatusForbidden, fmt.Errorf("host %q is not this server's: add it to operators.allowed_hosts if operators use that name", hostName(r.Host)))
	return false
}

// operator authenticates r, answering the refusal itself when it fails.
func (g *Guard) operator(w http.ResponseWriter, r *http.Request) (string, bool) {
	if g.throttled(r) {
		w.Header().Set("Retry-After", "300")
		g.refuse(w, r, http.StatusTooManyRequests, errTooManyFails)
		return "", false
	}
	actor, err := g.authenticate(r)
	return actor, g.answer(w, r, err)
}

// answer refuses a request whose authentication failed with err; it reports whether the
// request may go on.
func (g *Guard) answer(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "5")
		g.refuse(w, r, http.StatusServiceUnavailable, err)
	case errors.Is(err, errBadCredential):
		g.failed(r)
		g.refuse(w, r, http.StatusUnauthorized, err)
	default:
		g.refuse(w, r, http.StatusUnauthorized, err)
	}
	return false
}

// View guards a read-only route: the host allow-list always, an operator credential unless
// read-only views are open. A browser asking for a page is sent to the login form.
func (g *Guard) View(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.checkHost(w, r) {
			return
		}
		if g.readOnlyOpen {
			h.ServeHTTP(w, r)
			return
		}
		if g.throttled(r) {
			w.Header().Set("Retry-After", "300")
			g.refuse(w, r, http.StatusTooManyRequests, errTooManyFails)
			return
		}
		actor, err := g.authenticate(r)
		if errors.Is(err, errNoCredential) && r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
			http.Redirect(w, r, "/dashboard/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if !g.answer(w, r, err) {
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, actor)))
	})
}

// Action guards a state-changing route: the host allow-list, a same-origin request (CSRF)
// and an operator credential; the handler finds the operator with Actor.
func (g *Guard) Action(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.checkHost(w, r) {
			return
		}
		if err := g.cop.Check(r); err != nil {
			g.refuse(w, r, http.StatusForbidden, fmt.Errorf("refused a request from another site's page (%v)", err))
			return
		}
		if !g.Configured() {
			g.refuse(w, r, http.StatusForbidden, errNoOperators)
			return
		}
		actor, ok := g.operator(w, r)
		if !ok {
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, actor)))
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	json.NewEncoder(w).Encode(v)
}
