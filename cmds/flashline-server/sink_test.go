package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol/sink"
	"github.com/flashline/flashline/server/config"
)

// TestServeThroughputSink runs the server with only its throughput sink and pushes to it the
// way a device's wifi.throughput step does.
func TestServeThroughputSink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg, err := config.Parse([]byte("sink:\n  enabled: true\n  listen: \"" + addr + "\"\n"))
	if err != nil {
		t.Fatalf("sink-only config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler)) }()

	var c net.Conn
	for i := 0; i < 50; i++ {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("sink not listening: %v", err)
	}
	res, err := sink.Push(ctx, c, 300*time.Millisecond)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes <= 0 || res.Mbps <= 0 {
		t.Fatalf("push result %+v: the sink counted nothing", res)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestSinkConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		yaml    string
		wantErr string
	}{
		{"sink: {enabled: true, listen: \":5201\"}", ""},
		{"sink: {enabled: true, listen: \"5201\"}", "sink.listen"},
		{"sink: {enabled: true, listen: \":5201\", max_duration: -1s}", "sink.max_duration"},
		{"sink: {enabled: true, listen: \":5201\", speed: 3}", "speed"},
	} {
		_, err := config.Parse([]byte(tc.yaml))
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Parse(%s) = %v, want error containing %q", tc.yaml, err, tc.wantErr)
		}
	}
}
