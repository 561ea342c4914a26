package netlab

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
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
	// The host reaches the namespace over the veth pair, and only there.
	if out, err := exec.Command("ping", "-c1", "-W2", l.NSSide.Addr().String()).CombinedOutput(); err != nil && !strings.Contains(err.Error(), "executable file not found") {
		t.Fatalf("host cannot reach the namespace's veth side: %v: %s", err, out)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Command(ctx, "true").CombinedOutput(); err == nil {
		t.Fatalf("namespace still exists after Close: %s", out)
	}
}
