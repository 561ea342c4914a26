package config

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestOperatorsDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !On(c.Operators.ReadOnlyOpen) || c.Operators.SessionTTL != 12*time.Hour || c.Operators.Any() {
		t.Errorf("defaults: %+v", c.Operators)
	}
}

// Every mistake of an operators block at its line and column, as `flashline-server check`
// prints it.
func TestOperatorsCheckPositions(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("password1"), MinBcryptCost)
	weak, _ := bcrypt.GenerateFromPassword([]byte("password1"), bcrypt.MinCost)
	yaml := "operators:\n" +
		"  users:\n" +
		"    - {name: ana, password_hash: '" + string(h) + "'}\n" +
		"    - {name: ana, password_hash: 'hunter22'}\n" +
		"    - {name: 'b b', password_hash: '" + string(weak) + "'}\n" +
		"  tokens:\n" +
		"    - {name: mes, sha256: abc}\n" +
		"  client_cert_cns: [lead]\n" +
		"  allowed_hosts: ['http://line.local/', line.local]\n" +
		"  session_ttl: 10s\n" +
		"  read_only_opn: false\n"
	_, ps := Check("c.yaml", []byte(yaml), CheckOptions{})
	want := []string{
		`c.yaml:4:7: operators.users[1]: "user:ana" already given at operators.users[0]`,
		`c.yaml:4:34: operators.users[1] (ana): password_hash: not a bcrypt hash ($2b$...): write the output of flashline-server passwd, never the password itself`,
		`c.yaml:5:14: operators.users[2]: name "b b": want 1 to 64 letters, digits, '.', '_', '-' or '@'`,
		`c.yaml:5:36: operators.users[2] (b b): password_hash: bcrypt cost 4: at least 10`,
		`c.yaml:7:27: operators.tokens[0] (mes): sha256: want the token's SHA-256 in 64 hex digits (flashline-server passwd -token makes a token and its hash)`,
		`c.yaml:8:3: operators.client_cert_cns: needs operators.client_ca, the CA that issued the operators' certificates`,
		`c.yaml:8:3: operators.client_cert_cns: client certificates need HTTPS (http.tls_cert and http.tls_key)`,
		`c.yaml:9:19: operators.allowed_hosts[0] "http://line.local/": want a host name as browsers send it, without scheme, port or path (line-server.local)`,
		`c.yaml:10:16: operators.session_ttl 10s: want 1m to 720h`,
		`c.yaml:11:3: unknown key "operators.read_only_opn" (did you mean "read_only_open"?)`,
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
