package netlab

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
)

func TestLabIsolatedAndCleanedUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("netlab needs root to create network namespaces")
	}
	ctx := context.Background()
	l, err := New(ctx, Config{NS: "flashline-netlab-test"})
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
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Command(ctx, "true").CombinedOutput(); err == nil {
		t.Fatalf("namespace still exists after Close: %s", out)
	}
}
