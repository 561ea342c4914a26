package dashboard_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/server/dashboard"
)

// The attack of issue 13: 5000 /dashboard/events streams grew the server's memory from 45 to
// 178 MB, with no cap. Beyond the cap (64 by default) a browser gets 503 with a message, and
// a slot frees when a view closes.
func TestEventStreamCap(t *testing.T) {
	d := dashboard.New(dashboard.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	mux := http.NewServeMux()
	d.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer cancel() // streams end before the server closes

	open := func() (*http.Response, context.CancelFunc) {
		rctx, rcancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(rctx, "GET", srv.URL+"/dashboard/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, rcancel
	}
	var streams []context.CancelFunc
	for i := range 64 {
		resp, c := open()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i+1, resp.StatusCode)
		}
		// Wait for its hello so the stream is counted before the next one.
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, c)
	}
	for range 6 {
		resp, c := open()
		b, _ := io.ReadAll(resp.Body)
		c()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "64 live views are open") {
			t.Fatalf("stream 65: %d %s, want 503 with a message", resp.StatusCode, b)
		}
	}
	if n := d.Clients(); n != 64 {
		t.Errorf("%d live views held, want 64", n)
	}
	streams[0]()
	deadline := time.Now().Add(3 * time.Second)
	for d.Clients() >= 64 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	resp, c := open()
	defer c()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after one view closed: %d, want 200", resp.StatusCode)
	}
	for _, c := range streams[1:] {
		c()
	}
}
