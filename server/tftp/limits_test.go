package tftp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// hoard sends n read requests with timeout=255 from as many sockets on local and never
// acknowledges anything: each would hold a transfer slot for 255 s x (retries + 1) if the
// server believed the client's timeout. The sockets stay open until the test ends.
func hoard(t *testing.T, server netip.AddrPort, local net.IP, n int) {
	t.Helper()
	rrq := binary.BigEndian.AppendUint16(nil, opRRQ)
	rrq = append(rrq, "pxelinux.0\x00octet\x00timeout\x00255\x00"...)
	for range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.WriteToUDPAddrPort(rrq, server); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the server take them all up
}

var (
	attacker = net.IPv4(127, 0, 0, 1)
	victim   = net.IPv4(127, 0, 0, 2)
)

// The attack of issue 13: 64 never-acknowledged RRQs with timeout=255 made every real client
// "server busy" for ~25 minutes. One address now holds at most MaxPerClient slots.
func TestHoarderCannotTakeEverySlot(t *testing.T) {
	f := startServer(t, Config{MaxTransfers: 64}, nil)
	hoard(t, f.srv.Addr(), attacker, 64)
	res, err := testClient{local: victim}.get(t, f.srv.Addr(), "pxelinux.0")
	if err != nil {
		t.Fatalf("real client after 64 hoarding requests: %v", err)
	}
	if string(res.data) != string(f.files["pxelinux.0"]) {
		t.Fatal("real client got the wrong content")
	}
	// The attacker's own address is refused beyond its share.
	_, err = testClient{local: attacker, timeout: time.Second}.get(t, f.srv.Addr(), "empty")
	var te *tftpError
	if !errors.As(err, &te) || !strings.Contains(te.msg, "too many transfers from your address") {
		t.Errorf("attacker's 65th request: %v, want a per-client busy error", err)
	}
}

// Hoarders spread over many addresses (or spoofing them) still fill every slot, but only for
// MaxIdle, not for the 255 s x 6 their timeout option asks for.
func TestIdleTransfersEndWhateverTheClientTimeout(t *testing.T) {
	const idle = time.Second
	f := startServer(t, Config{MaxTransfers: 64, MaxPerClient: 64, MaxIdle: idle}, nil)
	start := time.Now()
	hoard(t, f.srv.Addr(), attacker, 64)
	_, err := testClient{local: victim, timeout: time.Second}.get(t, f.srv.Addr(), "empty")
	var te *tftpError
	if !errors.As(err, &te) || !strings.Contains(te.msg, "busy") {
		t.Fatalf("while every slot is hoarded: %v, want busy (the reproduction)", err)
	}
	for {
		res, err := testClient{local: victim, timeout: time.Second}.get(t, f.srv.Addr(), "pxelinux.0")
		if err == nil {
			if string(res.data) != string(f.files["pxelinux.0"]) {
				t.Fatal("wrong content")
			}
			break
		}
		if time.Since(start) > idle+5*time.Second {
			t.Fatalf("real client still refused %s after the hoard: %v", time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(start); d > idle+5*time.Second {
		t.Errorf("slots freed after %s, want about %s", d, idle)
	}
}

// A transfer that keeps moving but takes longer than MaxLifetime is ended by the server.
func TestTransferLifetime(t *testing.T) {
	f := startServer(t, Config{MaxLifetime: 500 * time.Millisecond}, nil)
	start := time.Now()
	_, err := testClient{ackDelay: 2 * time.Millisecond}.get(t, f.srv.Addr(), "big")
	var te *tftpError
	if !errors.As(err, &te) || !strings.Contains(te.msg, "too long") {
		t.Fatalf("slow 3 MiB transfer with a 500ms lifetime: %v, want 'transfer took too long'", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("ended after %s", d)
	}
	// A slow but normal transfer within the lifetime completes.
	res, err := testClient{ackDelay: time.Millisecond}.get(t, f.srv.Addr(), "pxelinux.0")
	if err != nil || len(res.data) != len(f.files["pxelinux.0"]) {
		t.Fatalf("slow small transfer: %v", err)
	}
}
