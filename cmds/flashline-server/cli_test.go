package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flashline/flashline/server/store"
)

// TestCLIConventions runs the binary: -h exits 0 everywhere, usage errors 2 with a message,
// not found 1.
func TestCLIConventions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	example := filepath.Join("..", "..", "docs", "server.example.yaml")
	tests := []struct {
		args     []string
		code     int
		inOutput string // in stdout or stderr
	}{
		{[]string{"-h"}, 0, "usage: flashline-server"},
		{[]string{"--help"}, 0, "usage: flashline-server"},
		{[]string{"help"}, 0, "usage: flashline-server"},
		{[]string{"serve", "-h"}, 0, "-config"},
		{[]string{"-config", "x", "-h"}, 0, "-config"},
		{[]string{"check", "-h"}, 0, "usage: flashline-server check"},
		{[]string{"export", "-h"}, 0, "-serial"},
		{[]string{"reset", "-h"}, 0, "-mac"},
		{[]string{"init", "-h"}, 0, "usage: flashline-server init"},
		{[]string{"init", "-mode", "half"}, 2, `-mode "half": want proxy or full`},
		{[]string{"keygen", "-h"}, 0, "usage: flashline-server keygen"},
		{[]string{"tls-init", "-h"}, 0, "usage: flashline-server tls-init"},
		{[]string{"frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "-nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"check", "-config", example, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"export", "-data", dir}, 2, "-serial is required"},
		{[]string{"export", "-data", dir, "-serial", "S1", "-format", "xml"}, 2, `unknown format "xml": the formats are json and csv`},
		{[]string{"export", "-data", dir, "-serial", "NO-SUCH-SERIAL"}, 1, `serial "NO-SUCH-SERIAL" not found`},
		{[]string{"export", "-data", filepath.Join(dir, "nope"), "-serial", "S1"}, 1, "no results database"},
		{[]string{"reset", "-data", dir}, 2, "-mac is required"},
		{[]string{"keygen"}, 2, "-out DIR is required"},
		{[]string{"tls-init"}, 2, "-out DIR is required"},
		{[]string{"check", "-config", example, "-file-only"}, 0, "ok"},
		{[]string{"check", "-config", filepath.Join(dir, "missing.yaml")}, 1, "missing.yaml:1:1: read config"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			cmd := exec.Command(bin, tt.args...)
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(out.String(), tt.inOutput) {
				t.Errorf("exit %d, want %d; output should contain %q:\n%s", code, tt.code, tt.inOutput, out.String())
			}
		})
	}
}

// TestCheckCommand: the mistakes all come out at once, at their lines, and serve
// refuses the same file without creating its data directory.
func TestCheckCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.yaml")
	os.WriteFile(cfg, []byte(`data_dir: data
images_dir: images
scenarios_dir: scenarios
http:
  listen: ":80800"
  publc_url: http://10.0.0.1:8080
tftp: {enabled: true, root: tftp, pxelinux: {server_url: "http://10.0.0.1:8080"}}
images: [{name: os, file: os.img}]
rules: [{scenario: box.yaml, image: os, target: {transport: floppy}}]
`), 0o644)
	want := []string{
		cfg + `:4:1: http: has settings but no "enabled: true"`,
		cfg + `:5:11: http.listen ":80800": port 80800 out of range`,
		cfg + `:6:3: unknown key "http.publc_url" (did you mean "public_url"?)`,
		cfg + `:7:29: tftp.root "` + filepath.Join(dir, "tftp") + `": does not exist`,
		cfg + `:9:61: rules[0] (rule 1): target.transport "floppy"`,
	}
	for _, args := range [][]string{{"check", "-config", cfg}, {"serve", "-config", cfg}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%v: %v, want exit 1", args, err)
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%v: output lacks %q:\n%s", args, w, out)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("serve created data_dir before failing its check: %v", err)
	}
}

// TestShutdownLine: SIGTERM stops the server with a line saying so, exit 0, and the log keys
// use component=.
func TestShutdownLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	addr := freePort(t)
	_, cfg := lineDir(t, addr)
	// The server writes while the test reads: through the lock.
	log := &lockedWriter{w: &bytes.Buffer{}}
	cmd := exec.Command(bin, "serve", "-config", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(log.String(), "http listening") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("server did not start:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, log.String())
	}
	out := log.String()
	for _, w := range []string{"shutting down: signal received", "flashline-server stopped", "component=images"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	// One key scheme: every line, the server's own start-up and shutdown lines included.
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(l, " component=") {
			t.Errorf("a log line without component=: %s", l)
		}
	}
	for _, old := range []string{" part=", " service="} {
		if strings.Contains(out, old) {
			t.Errorf("log still uses %q:\n%s", old, out)
		}
	}
}
