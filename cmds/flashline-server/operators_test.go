package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/flashline/flashline/agent/lineclient"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/store"
)

func run(t *testing.T, bin, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// passwd's output pasted into server.yaml is a configuration check accepts, and it is the
// password's bcrypt hash (never the password); -token prints a token once and its SHA-256.
func TestPasswdCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	out, errOut, code := run(t, bin, "correct horse\n", "passwd", "-name", "ana", "-cost", "10")
	if code != 0 {
		t.Fatalf("passwd: exit %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`- \{name: ana, password_hash: '(\$2a\$10\$[^']+)'\}`).FindStringSubmatch(out)
	if m == nil || strings.Contains(out+errOut, "correct horse") {
		t.Fatalf("passwd output %q (stderr %q)", out, errOut)
	}
	if bcrypt.CompareHashAndPassword([]byte(m[1]), []byte("correct horse")) != nil {
		t.Error("the hash does not verify the password")
	}
	out, errOut, code = run(t, bin, "", "passwd", "-name", "mes", "-token")
	tm := regexp.MustCompile(`- \{name: mes, sha256: ([0-9a-f]{64})\}`).FindStringSubmatch(out)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 0 || tm == nil || len(lines) < 2 {
		t.Fatalf("passwd -token: exit %d %q %q", code, out, errOut)
	}
	tok := lines[1]
	if sum := sha256.Sum256([]byte(tok)); hex.EncodeToString(sum[:]) != tm[1] || len(tok) < 43 {
		t.Errorf("token %q does not hash to %s", tok, tm[1])
	}
	yaml := "operators:\n  users:\n    - {name: ana, password_hash: '" + m[1] + "'}\n  tokens:\n    - {name: mes, sha256: " + tm[1] + "}\n"
	if _, ps := config.Check("server.yaml", []byte(yaml), config.CheckOptions{}); len(ps) != 0 {
		t.Errorf("passwd's lines do not check: %v\n%s", ps, yaml)
	}
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"short\n", []string{"passwd", "-name", "ana"}, 1, "at least 8 characters"},
		{"", []string{"passwd"}, 2, "-name"},
		{"", []string{"passwd", "-name", "ana", "hunter22"}, 2, "never an argument"},
		{"", []string{"passwd", "-name", "ana", "-cost", "4"}, 2, "-cost 4"},
	} {
		if _, e, code := run(t, bin, c.stdin, c.args...); code != c.code || !strings.Contains(e, c.msg) {
			t.Errorf("%v: exit %d %q, want %d with %q", c.args, code, e, c.code, c.msg)
		}
	}
}

// A reset from the command line is in the audit log with who made it: -actor, else the local
// user; `audit` shows it.
func TestResetCommandAudited(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:00:00:41"
	if err := st.StartRun(ctx, store.NewRun{RunID: "r41", Serial: "S41", MAC: mac, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutResult(ctx, protocol.Result{RunID: "r41", Serial: "S41", Status: protocol.StatusPass}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, e, code := run(t, bin, "", "reset", "-data", dir, "-mac", mac, "-actor", "bob-shift2", "-reason", "rework"); code != 0 {
		t.Fatalf("reset -actor: exit %d %s", code, e)
	}
	if _, e, code := run(t, bin, "", "reset", "-data", dir, "-mac", mac); code != 0 {
		t.Fatalf("reset: exit %d %s", code, e)
	}
	if _, e, code := run(t, bin, "", "reset", "-data", dir, "-mac", mac, "-actor", "no spaces"); code != 2 || !strings.Contains(e, "-actor") {
		t.Errorf("bad -actor: exit %d %s", code, e)
	}
	out, e, code := run(t, bin, "", "audit", "-data", dir, "-json")
	if code != 0 {
		t.Fatalf("audit: exit %d %s", code, e)
	}
	var log []store.AuditEntry
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var en store.AuditEntry
		if err := json.Unmarshal([]byte(l), &en); err != nil {
			t.Fatalf("audit -json line %q: %v", l, err)
		}
		log = append(log, en)
	}
	host, _ := os.Hostname()
	if len(log) != 2 || !strings.HasPrefix(log[0].Actor, "cli:") || !strings.HasSuffix(log[0].Actor, "@"+host) ||
		log[1].Actor != "cli:bob-shift2" || log[1].Detail != "flashline-server reset: rework" || log[1].MAC != mac {
		t.Errorf("audit log: %+v", log)
	}
	out, _, _ = run(t, bin, "", "audit", "-data", dir)
	if !strings.Contains(out, "cli:bob-shift2") || !strings.Contains(out, "TIME") {
		t.Errorf("audit table:\n%s", out)
	}
}

// The server as shipped: with a token configured the dashboard's reset works for it alone
// and lands in the audit log, a rebound host name is refused, and the HTTP deadlines cut
// a client that sends its headers too slowly or holds an idle connection.
func TestServeOperatorsAndDeadlines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	addr := freePort(t)
	_, cfg := lineDir(t, addr)
	const token = "serve-test-token-0123456789abcdefghijklmno"
	sum := sha256.Sum256([]byte(token))
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
data_dir: data
images_dir: images
scenarios_dir: scenarios
http: {enabled: true, listen: %q}
images: [{name: os, file: os.img}]
rules: [{name: all, scenario: box.yaml, image: os}]
limits: {http: {read_header_timeout: 1s, idle_timeout: 1s}}
operators: {tokens: [{name: mes, sha256: %s}]}
`, addr, hex.EncodeToString(sum[:]))), 0o644)
	srv := startServer(t, bin, cfg, addr)
	defer func() { srv.cmd.Process.Signal(syscall.SIGTERM); srv.cmd.Wait() }()

	const mac = "52:54:00:ab:cd:51"
	c, _ := lineclient.New("http://"+addr, nil)
	ctx := context.Background()
	resp, err := c.Hello(ctx, protocol.Hello{BootMAC: mac, Nonce: "n1", Inventory: protocol.Inventory{DMI: protocol.DMI{Serial: "W51"}}})
	if err != nil || resp.Job == nil {
		t.Fatalf("hello: %v %+v", err, resp)
	}
	job, _ := protocol.OpenJob(*resp.Job, nil)
	if _, err := c.PutResult(ctx, protocol.Result{RunID: job.RunID, Serial: "W51", MAC: mac, Status: protocol.StatusPass, Secret: resp.RunSecret}); err != nil {
		t.Fatal(err)
	}
	reset := func(h map[string]string) int {
		req, _ := http.NewRequest("POST", "http://"+addr+"/dashboard/api/devices/"+mac+"/reset", nil)
		for k, v := range h {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r.StatusCode
	}
	if code := reset(nil); code != http.StatusUnauthorized {
		t.Errorf("reset without a credential: %d, want 401", code)
	}
	if code := reset(map[string]string{"Authorization": "Bearer " + token, "Host": "evil.example:80", "Origin": "http://evil.example:80"}); code != http.StatusForbidden {
		t.Errorf("reset through a rebound name: %d, want 403", code)
	}
	if out, _ := exec.Command(bin, "audit", "-config", cfg).Output(); strings.Contains(string(out), mac) {
		t.Fatalf("refused resets were logged:\n%s", out)
	}
	if code := reset(map[string]string{"Authorization": "Bearer " + token}); code != http.StatusOK {
		t.Fatalf("reset with the token: %d\n%s", code, srv.log)
	}
	out, err := exec.Command(bin, "audit", "-config", cfg).Output()
	if err != nil || !strings.Contains(string(out), "token:mes") || !strings.Contains(string(out), mac) {
		t.Errorf("audit after the reset: %v\n%s", err, out)
	}

	// Slow headers: half a request line, then nothing.
	closedWithin := func(conn net.Conn, within time.Duration) bool {
		conn.SetReadDeadline(time.Now().Add(within))
		_, err := io.Copy(io.Discard, conn)
		return err == nil // EOF: the server closed it; a timeout is our deadline
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n"))
	if !closedWithin(conn, 5*time.Second) {
		t.Error("a client sending its headers slowly held its connection past read_header_timeout")
	}
	conn.Close()
	// Idle keep-alive: one request answered, then silence.
	conn, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET /dashboard/api/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
	if !closedWithin(conn, 5*time.Second) {
		t.Error("an idle keep-alive connection outlived idle_timeout")
	}
	conn.Close()
}
