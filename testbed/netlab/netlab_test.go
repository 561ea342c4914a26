package netlab

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLabIsolatedAndCleanedUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("netlab needs root to create network namespaces")
	}
	ctx := context.Background()
	l, err := New(ctx, Config{NS: "flashline-netlab-test", Veth: true})
	if err != nil {
		t.Fatal(err)
	}
	// The server address is on the tap inside the namespace and nowhere else.
	out, err := l.Command(ctx, "ip", "-o", "addr", "show", "dev", l.Tap).CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr in ns: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "10.77.0.1/24") {
		t.Fatalf("tap has no server address: %s", out)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if strings.HasPrefix(a.String(), "10.77.0.1/") {
			t.Fatalf("server address leaked into the host namespace")
		}
	}
	// The host reaches the namespace over the veth pair: a listener inside (this test binary,
	// re-executed there) answers a dial from the host.
	srv := l.Command(ctx, os.Args[0], "-test.run", "^TestHelperListen$")
	srv.Env = append(os.Environ(), "NETLAB_LISTEN="+net.JoinHostPort(l.NSSide.Addr().String(), "7777"))
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready" {
		t.Fatalf("listener in the namespace did not start: %q %v", buf, err)
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(l.NSSide.Addr().String(), "7777"), 5*time.Second)
	if err != nil {
		t.Fatalf("host cannot reach the namespace over the veth pair: %v", err)
	}
	c.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Command(ctx, "true").CombinedOutput(); err == nil {
		t.Fatalf("namespace still exists after Close: %s", out)
	}
}

// TestHelperListen is not a test: it is the listener TestLabIsolatedAndCleanedUp runs inside
// the namespace.
func TestHelperListen(t *testing.T) {
	addr := os.Getenv("NETLAB_LISTEN")
	if addr == "" {
		t.Skip("helper process only")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("ready")
	c, err := ln.Accept()
	if err == nil {
		c.Close()
	}
}
