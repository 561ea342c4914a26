//go:build e2e

package flash

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/flashline/flashline/agent/flash/internal/swarm/swarmtest"
)

// TestSwarmFromAria2 is interop: the only seed is Debian's aria2c, and the image's URL
// (web seed and fallback) points at a closed port, so every byte of the flash came from
// aria2 over BitTorrent. aria2c missing is a failure, not a skip: scripts/setup installs it.
func TestSwarmFromAria2(t *testing.T) {
	aria2, err := exec.LookPath("aria2c")
	if err != nil {
		t.Fatal("aria2c is not installed (apt-get install aria2; scripts/setup does)")
	}
	img := testImage(24<<20, 31)
	gz := compress(t, "gzip", img)
	dead := "http://127.0.0.1:1/image.img.gz" // nothing listens there
	mi := swarmtest.Metainfo(t, gz, 256<<10, dead)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, swarmtest.Name), gz, 0o644); err != nil {
		t.Fatal(err)
	}
	tor := filepath.Join(dir, "image.torrent")
	if err := os.WriteFile(tor, mi, 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, aria2, "--seed-ratio=0.0", "-V", "--dir", dir,
		"--listen-port", fmt.Sprint(port), "--enable-dht=false", "--enable-dht6=false",
		"--bt-enable-lpd=false", "--enable-peer-exchange=false", "--bt-tracker-connect-timeout=1",
		"--console-log-level=warn", "--summary-interval=0", "--check-integrity=true", tor)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	peer := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, peer, 30*time.Second)

	dst := writeFile(t, "disk", nil)
	res, err := Write(t.Context(), Options{Source: dead, Target: dst, SHA256: sum(img), NoDirect: true, Retries: -1,
		Swarm: &Swarm{Torrent: tor, Peers: []string{peer}, Stall: 20 * time.Second}})
	if err != nil {
		t.Fatalf("flash: %v\naria2c:\n%s", err, logs.String())
	}
	if !bytes.Equal(readFile(t, dst)[:len(img)], img) {
		t.Fatal("the target does not hold the image")
	}
	t.Logf("%d bytes (%d compressed) from aria2c in %v: %+v", res.Bytes, len(gz), res.Duration, res.Swarm)
	if res.Swarm.Fallback != "" || res.Swarm.FromHTTP != 0 || res.Swarm.FromPeers < int64(len(gz)) {
		t.Fatalf("swarm %+v: want every byte from aria2c", res.Swarm)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, addr string, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %v", addr, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
