// Package storetest gives tests a PostgreSQL database of their own on the server that
// FLASHLINE_TEST_PG_DSN names (scripts/pg-test-cluster starts a throw-away one), and outage
// tests a whole server of their own to stop and start.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// EnvDSN names the PostgreSQL server the tests use; EnvData is the directory of a cluster
// that pg-test-cluster started.
const (
	EnvDSN  = "FLASHLINE_TEST_PG_DSN"
	EnvData = "FLASHLINE_TEST_PG_DATA"
)

// PostgresDSN creates an empty database for this test and returns its DSN; it is dropped
// when the test ends. Without FLASHLINE_TEST_PG_DSN the test is skipped.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDSN)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s (eval \"$(scripts/pg-test-cluster start)\")", EnvDSN)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "flashline_test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres %s: %v", base, err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database on %s: %v", base, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return WithDatabase(base, name)
}

// WithDatabase returns dsn (a URL or key=value string) naming database db instead.
func WithDatabase(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path = "/" + db
			return u.String()
		}
	}
	return dsn + " dbname=" + db
}

// Cluster is a PostgreSQL server of one test's own, for tests that stop and start it (other
// packages' tests may be using the shared one meanwhile).
type Cluster struct {
	DSN    string
	dir    string
	script string
}

// OwnCluster starts a throw-away cluster (scripts/pg-test-cluster) for this test and
// destroys it when the test ends. Skipped without FLASHLINE_TEST_PG_DSN (no PostgreSQL here).
func OwnCluster(t testing.TB) *Cluster {
	t.Helper()
	if os.Getenv(EnvDSN) == "" {
		t.Skipf("PostgreSQL outage tests skipped: set %s (eval \"$(scripts/pg-test-cluster start)\")", EnvDSN)
	}
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, "start").CombinedOutput()
	if err != nil {
		t.Fatalf("pg-test-cluster start: %v\n%s", err, out)
	}
	c := &Cluster{script: script}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(l, "export "), "=")
		v = strings.Trim(v, "'")
		switch {
		case ok && k == EnvDSN:
			c.DSN = v
		case ok && k == EnvData:
			c.dir = v
		}
	}
	if c.DSN == "" || c.dir == "" {
		t.Fatalf("pg-test-cluster start printed no DSN and directory:\n%s", out)
	}
	t.Cleanup(func() { exec.Command(script, "destroy", c.dir).Run() })
	return c
}

// Stop stops the cluster (fast shutdown: connections are cut).
func (c *Cluster) Stop(t testing.TB) { c.run(t, "stop") }

// Crash stops the cluster at once, as a power cut would (immediate shutdown: no checkpoint,
// recovery from the WAL at the next start).
func (c *Cluster) Crash(t testing.TB) { c.run(t, "crash") }

// Start starts it again.
func (c *Cluster) Start(t testing.TB) { c.run(t, "start") }

func (c *Cluster) run(t testing.TB, action string) {
	t.Helper()
	if out, err := exec.Command(c.script, action, c.dir).CombinedOutput(); err != nil {
		t.Fatalf("pg-test-cluster %s: %v\n%s", action, err, out)
	}
}

// findScript finds scripts/pg-test-cluster above the working directory (the test's package).
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "pg-test-cluster")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no scripts/pg-test-cluster above %s", dir)
		}
		dir = parent
	}
}
