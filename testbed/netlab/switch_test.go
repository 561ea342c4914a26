package netlab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Two hosts on a switch reach each other through the bridge at the shaped rate, the cable
// counters see the bytes, an unplugged host is unreachable, and Close leaves no namespace.
func TestSwitchShapesAndCounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("netlab needs root to create network namespaces")
	}
	ctx := context.Background()
	prefix := fmt.Sprintf("flswt%d", os.Getpid())
	sw, err := NewSwitch(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	const rate = 8_000_000 // 1 MB/s
	a, err := sw.AddHost(ctx, "a", netip.MustParsePrefix("10.79.0.1/24"), rate)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sw.AddHost(ctx, "b", netip.MustParsePrefix("10.79.0.2/24"), rate)
	if err != nil {
		t.Fatal(err)
	}
	before, err := a.TxBytes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// b listens, a sends 2 MB: about 2 s at 1 MB/s.
	const n = 2_000_000
	sink := b.Command(ctx, os.Args[0], "-test.run", "^TestHelperSwitchPeer$")
	sink.Env = append(os.Environ(), "NETLAB_PEER=listen", "NETLAB_ADDR="+b.IP()+":7778")
	out, _ := sink.StdoutPipe()
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	defer sink.Process.Kill()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("sink did not start: %q", sc.Text())
	}
	src := a.Command(ctx, os.Args[0], "-test.run", "^TestHelperSwitchPeer$")
	src.Env = append(os.Environ(), "NETLAB_PEER=send", "NETLAB_ADDR="+b.IP()+":7778", "NETLAB_BYTES="+strconv.Itoa(n))
	start := time.Now()
	if o, err := src.CombinedOutput(); err != nil {
		t.Fatalf("sending across the switch: %v: %s", err, o)
	}
	if !sc.Scan() || sc.Text() != strconv.Itoa(n) {
		t.Fatalf("sink got %q bytes, want %d", sc.Text(), n)
	}
	took := time.Since(start)
	if took < 1500*time.Millisecond || took > 5*time.Second {
		t.Errorf("2 MB at 1 MB/s took %v, want about 2 s", took)
	}
	after, err := a.TxBytes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := after - before; got < n || got > n*11/10 {
		t.Errorf("a's cable counted %d bytes sent, want a bit over %d", got, n)
	}
	// b's sink has exited; a new one answers dials until b is unplugged.
	sink2 := b.Command(ctx, os.Args[0], "-test.run", "^TestHelperSwitchPeer$")
	sink2.Env = append(os.Environ(), "NETLAB_PEER=listen", "NETLAB_ADDR="+b.IP()+":7779")
	out2, _ := sink2.StdoutPipe()
	if err := sink2.Start(); err != nil {
		t.Fatal(err)
	}
	defer sink2.Process.Kill()
	if sc2 := bufio.NewScanner(out2); !sc2.Scan() || sc2.Text() != "ready" {
		t.Fatal("second sink did not start")
	}
	dial := func() error {
		c := a.Command(ctx, os.Args[0], "-test.run", "^TestHelperSwitchPeer$")
		c.Env = append(os.Environ(), "NETLAB_PEER=dial", "NETLAB_ADDR="+b.IP()+":7779")
		o, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, o)
		}
		return nil
	}
	if err := b.Unplug(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err == nil {
		t.Errorf("unplugged host still answers")
	}
	if err := b.Plug(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err != nil {
		t.Errorf("plugged host does not answer: %v", err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.CommandContext(ctx, "ip", "netns", "list").Output(); err != nil || strings.Contains(string(o), prefix) {
		t.Errorf("namespaces left after Close (%v): %s", err, o)
	}
}

// TestHelperSwitchPeer is not a test: it is the sender or the sink of
// TestSwitchShapesAndCounts, run inside a host's namespace.
func TestHelperSwitchPeer(t *testing.T) {
	addr := os.Getenv("NETLAB_ADDR")
	switch os.Getenv("NETLAB_PEER") {
	case "listen":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("ready")
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, c)
		fmt.Println(n)
	case "dial":
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	case "send":
		n, _ := strconv.Atoi(os.Getenv("NETLAB_BYTES"))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(c, zeroReader{}, int64(n)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	default:
		t.Skip("helper process only")
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
