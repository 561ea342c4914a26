package sink

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestPushOverLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, time.Minute, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := Push(ctx, c, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes <= 0 || r.Mbps <= 0 || r.Elapsed < 200*time.Millisecond {
		t.Fatalf("result %+v", r)
	}
}
