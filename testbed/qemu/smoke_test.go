//go:build e2e

package qemu

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"testing"
	"time"
)

// closedPort returns a host loopback port nobody listens on: the guest reaches it as
// 10.0.2.2:port through user networking and gets "connection refused" at once.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// bootSmoke netboots initrd.gz and checks the agent's boot: modules, DHCP on the BOOTIF NIC,
// its "up on" line, then that it reports the absent line server and retries.
func bootSmoke(t *testing.T, mode Mode, budget time.Duration) {
	server := fmt.Sprintf("http://10.0.2.2:%d", closedPort(t))
	// The budget counts from QEMU's start, not from the wait for the machine-wide lock.
	vm := StartT(t, Options{Mode: mode, Append: "flashline.server=" + server, Timeout: budget})
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()

	step := func(what string, re string, d time.Duration) []string {
		t.Helper()
		m, err := vm.ExpectSubmatch(ctx, regexp.MustCompile(re), d)
		if err != nil {
			t.Fatalf("FAIL %s: %v", what, err)
		}
		t.Logf("%6.1fs %s: %s", vm.Elapsed().Seconds(), what, m[0])
		return m
	}
	step("kernel started", `Linux version \d`, budget)
	// pxelinux's IPAPPEND 2 shows that the PXE chain, not QEMU, loaded the kernel.
	step("booted by pxelinux", `Command line: .*BOOTIF=01-52-54-00-12-34-56`, 10*time.Second)
	step("agent started", `flashline-agent \S+ starting`, budget)
	step("modules loaded", `OK   modules: \d+ loaded`, 60*time.Second)
	up := step("network up", `flashline-agent (\S+) up on (\S+) (52:54:00:12:34:56), (10\.0\.2\.15)`, 60*time.Second)
	t.Logf("agent %s up on %s %s %s", up[1], up[2], up[3], up[4])
	// The journey names the server by role or by URL; the reason must show the URL.
	re := `WARN no answer from (the line server|` + regexp.QuoteMeta(server) + `): .*` + regexp.QuoteMeta(server) + `.*; retrying in \d+(\.\d+)?m?s`
	step("server absent reported", re, 30*time.Second)
	step("retried", re, 30*time.Second)
	t.Logf("PASS %s boot in %.1fs", mode, vm.Elapsed().Seconds())
}

func TestBootSmoke(t *testing.T) {
	bootSmoke(t, PXEBIOS, 150*time.Second)
}

func TestBootSmokeUEFI(t *testing.T) {
	bootSmoke(t, PXEUEFI, 180*time.Second)
}
