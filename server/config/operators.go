package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Operators says who may change things through the dashboard (reset a device), and who may
// look at it (server/operatorauth; docs/trust.md). With none configured the dashboard's
// views stay open and every action is refused: resets are then made with
// `flashline-server reset` on the line host.
type Operators struct {
	// Tokens are for scripts and the MES: sent as "Authorization: Bearer TOKEN". Only the
	// token's SHA-256 is written here (`flashline-server passwd -token -name NAME` makes one).
	Tokens []OperatorToken `yaml:"tokens"`
	// Users log in to the dashboard with a name and a password (a form, or HTTP basic auth
	// for scripts). The password is stored as a bcrypt hash (`flashline-server passwd`).
	Users []OperatorUser `yaml:"users"`
	// ClientCA is a PEM file of the CA(s) whose client certificates identify operators over
	// HTTPS; ClientCertCNs lists the certificates' common names that are operators.
	ClientCA      string   `yaml:"client_ca"`
	ClientCertCNs []string `yaml:"client_cert_cns"`
	// ReadOnlyOpen leaves the dashboard's views (device list, history, figures, exports, live
	// stream) open to anyone on the line network without a credential (default true). false:
	// views need an operator credential too.
	ReadOnlyOpen *bool `yaml:"read_only_open"`
	// AllowedHosts are the host names the dashboard answers to (the Host header, without its
	// port). IP addresses, localhost and http.public_url's host are always allowed. Any other
	// name is refused, which stops DNS rebinding: a page from another site whose name was made
	// to resolve to this server.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// SessionTTL is how long a dashboard login lasts (default 12h: one shift and a bit).
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// OperatorToken is one bearer token.
type OperatorToken struct {
	// Name says whose token it is; the audit log records "token:NAME".
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 of the token.
	SHA256 string `yaml:"sha256"`
}

// OperatorUser is one dashboard login.
type OperatorUser struct {
	// Name is the login name; the audit log records "user:NAME".
	Name string `yaml:"name"`
	// PasswordHash is the bcrypt hash of the password ($2a$, $2b$ or $2y$, cost 10 or more).
	PasswordHash string `yaml:"password_hash"`
}

// Operator defaults and bounds.
const (
	DefaultSessionTTL = 12 * time.Hour
	// MinBcryptCost is the least work factor accepted: lower costs make a copied config file
	// cheap to brute-force.
	MinBcryptCost = 10
)

func (o *Operators) setDefaults() {
	if o.ReadOnlyOpen == nil {
		t := true
		o.ReadOnlyOpen = &t
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = DefaultSessionTTL
	}
}

// Any reports whether any operator credential is configured.
func (o *Operators) Any() bool {
	return len(o.Tokens) > 0 || len(o.Users) > 0 || len(o.ClientCertCNs) > 0
}

// ValidOperatorName accepts 1 to 64 letters, digits, '.', '_', '-' or '@'.
func ValidOperatorName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)) {
			return false
		}
	}
	return true
}

func (c *Config) validateOperators() []error {
	o := &c.Operators
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	names := map[string]string{} // actor -> where it was first given
	seen := func(where, actor string) {
		if first, dup := names[actor]; dup {
			bad("%s: %q already given at %s", where, actor, first)
		}
		names[actor] = where
	}
	for i, t := range o.Tokens {
		where := fmt.Sprintf("operators.tokens[%d]", i)
		if !ValidOperatorName(t.Name) {
			bad("%s: name %q: want 1 to 64 letters, digits, '.', '_', '-' or '@'", where, t.Name)
		} else {
			seen(where, "token:"+t.Name)
		}
		if !isHex(t.SHA256, 64) {
			bad("%s (%s): sha256: want the token's SHA-256 in 64 hex digits (flashline-server passwd -token makes a token and its hash)", where, t.Name)
		}
	}
	for i, u := range o.Users {
		where := fmt.Sprintf("operators.users[%d]", i)
		if !ValidOperatorName(u.Name) {
			bad("%s: name %q: want 1 to 64 letters, digits, '.', '_', '-' or '@'", where, u.Name)
		} else {
			seen(where, "user:"+u.Name)
		}
		cost, err := bcrypt.Cost([]byte(u.PasswordHash))
		switch {
		case err != nil:
			bad("%s (%s): password_hash: not a bcrypt hash ($2b$...): write the output of flashline-server passwd, never the password itself", where, u.Name)
		case cost < MinBcryptCost:
			bad("%s (%s): password_hash: bcrypt cost %d: at least %d", where, u.Name, cost, MinBcryptCost)
		}
	}
	for i, cn := range o.ClientCertCNs {
		if strings.TrimSpace(cn) == "" || len(cn) > 256 {
			bad("operators.client_cert_cns[%d] %q: want a certificate's common name", i, cn)
		}
	}
	if len(o.ClientCertCNs) > 0 {
		if o.ClientCA == "" {
			bad("operators.client_cert_cns: needs operators.client_ca, the CA that issued the operators' certificates")
		}
		if c.HTTP.TLSCert == "" {
			bad("operators.client_cert_cns: client certificates need HTTPS (http.tls_cert and http.tls_key)")
		}
	} else if o.ClientCA != "" {
		bad("operators.client_ca: set, but operators.client_cert_cns names no operator")
	}
	for i, h := range o.AllowedHosts {
		if !validHostName(h) {
			bad("operators.allowed_hosts[%d] %q: want a host name as browsers send it, without scheme, port or path (line-server.local)", i, h)
		}
	}
	if o.SessionTTL < time.Minute || o.SessionTTL > 30*24*time.Hour {
		bad("operators.session_ttl %s: want 1m to 720h", o.SessionTTL)
	}
	return errs
}

// validHostName accepts a DNS name (letters, digits, '-', dots between labels) or an IP
// address.
func validHostName(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
