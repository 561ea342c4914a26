package httplimit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveFile serves one file of size bytes under /images/ through Handler with deadlines d,
// and reports on done when each request's handler returned.
func serveFile(t *testing.T, size int, d Deadlines) (addr string, done chan error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "big.img")
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 16)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /images/big.img", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(p)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		http.ServeContent(w, r, "", fi.ModTime(), f)
		done <- r.Context().Err()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.Streaming = StreamingPrefixes("/images/")
	srv := &http.Server{Handler: Handler(mux, d)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), done
}

// get sends a GET for the file on a connection with a small receive buffer (so the kernel
// does not swallow the whole file for a client that does not read) and returns it unread.
func get(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: nil}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(16 << 10)
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /images/big.img HTTP/1.1\r\nHost: x\r\n\r\n")
	return c
}

// The attack of issue 13: image downloads whose client never reads were held forever; 520 of
// them took every file descriptor. Without a stall bound the download is still held; with
// one it is dropped after it.
func TestStalledDownloadIsDropped(t *testing.T) {
	const size = 64 << 20
	for _, tc := range []struct {
		name    string
		stall   time.Duration
		dropped bool
	}{
		{"without a stall bound (the reproduction)", time.Hour, false},
		{"with a 1s stall bound", time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, done := serveFile(t, size, Deadlines{Body: time.Minute, Write: time.Minute, Stall: tc.stall})
			get(t, addr) // and never read
			select {
			case <-done:
				if !tc.dropped {
					t.Fatal("download ended although nobody read it")
				}
			case <-time.After(4 * time.Second):
				if tc.dropped {
					t.Fatal("download of a client that reads nothing still held after 4s")
				}
			}
		})
	}
}

// A client that reads slowly but steadily is never cut, even when the whole download takes
// several stall timeouts: the bound is on progress, not on the total time.
func TestSlowButMovingDownloadCompletes(t *testing.T) {
	const size = 16 << 20
	addr, done := serveFile(t, size, Deadlines{Body: time.Minute, Write: time.Minute, Stall: time.Second})
	c := get(t, addr)
	start := time.Now()
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	buf := make([]byte, 64<<10)
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes in %s: %v", n, time.Since(start), err)
		}
		time.Sleep(10 * time.Millisecond) // about 6 MB/s: the download takes ~3 stall timeouts
	}
	if n != size {
		t.Fatalf("got %d bytes, want %d", n, size)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Logf("download took only %s: the test did not exercise a download longer than the stall bound", d)
	}
	if err := <-done; err != nil {
		t.Errorf("handler: %v", err)
	}
}

// An ordinary answer gets a write deadline: a client that sends a request and never reads a
// large answer does not hold the handler.
func TestWriteDeadlineOnOrdinaryAnswers(t *testing.T) {
	mux := http.NewServeMux()
	done := make(chan struct{})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		chunk := make([]byte, 1<<20)
		for range 256 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: Handler(mux, Deadlines{Body: time.Second, Write: time.Second, Stall: time.Hour, Streaming: StreamingPrefixes("/images/")})}
	go srv.Serve(ln)
	defer srv.Close()
	c, _ := net.Dial("tcp", ln.Addr().String())
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(16 << 10)
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still writing to a client that does not read after 5s")
	}
}

// One address can hold at most perClient connections; others still get in, and a closed
// connection frees its slot.
func TestConnectionCaps(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(tcp, 2, 3, nil)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	status := func(c net.Conn) (int, string) {
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	a1, a2 := dial("127.0.0.1"), dial("127.0.0.1")
	if code, _ := status(a1); code != 200 {
		t.Fatalf("first connection: %d", code)
	}
	status(a2)
	if code, msg := status(dial("127.0.0.1")); code != 503 || !strings.Contains(msg, "too many connections from your address") {
		t.Errorf("third connection from one address: %d %q, want 503", code, msg)
	}
	if code, _ := status(dial("127.0.0.2")); code != 200 {
		t.Errorf("another address: %d, want 200", code)
	}
	if code, msg := status(dial("127.0.0.3")); code != 503 || !strings.Contains(msg, "too many connections to this server") {
		t.Errorf("fourth connection in all: %d %q, want 503", code, msg)
	}
	a1.Close()
	deadline := time.Now().Add(3 * time.Second)
	for ln.Open() > 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := status(dial("127.0.0.1")); code != 200 {
		t.Errorf("after closing one: %d, want 200", code)
	}
}

// Stalled downloads spread over connections: one address runs at most MaxStreamsPerClient
// downloads at once, the next gets 503 at once, and another address is not affected.
func TestDownloadCaps(t *testing.T) {
	addr, _ := serveFile(t, 64<<20, Deadlines{Body: time.Minute, Write: time.Minute, Stall: time.Hour, MaxStreamsPerClient: 2, MaxStreams: 3})
	get(t, addr)
	get(t, addr)
	time.Sleep(200 * time.Millisecond)
	status := func(c net.Conn) (int, string) {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b := make([]byte, 200)
		n, _ := io.ReadFull(resp.Body, b)
		return resp.StatusCode, string(b[:n])
	}
	if code, msg := status(get(t, addr)); code != 503 || !strings.Contains(msg, "too many downloads from your address") {
		t.Errorf("third download from one address: %d %q, want 503", code, msg)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /images/big.img HTTP/1.1\r\nHost: x\r\n\r\n")
	if code, _ := status(c); code != 200 {
		t.Errorf("download from another address: %d, want 200", code)
	}
}
