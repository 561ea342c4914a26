package tftp

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// OnTransfer hears of every transfer that started, with the cleaned name, the bytes the
// client acknowledged and whether it completed; refused requests are not transfers.
func TestOnTransfer(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "pxelinux.0"), randomBytes(46_000, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	got := make(chan Transfer, 10)
	srv, err := New(Config{ListenAddr: "127.0.0.1:0", Root: root},
		Deps{Logger: slog.New(slog.DiscardHandler), OnTransfer: func(tr Transfer) { got <- tr }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	before := time.Now()
	tests := []struct {
		client    testClient
		name      string
		wantFile  string
		wantBytes int64
		wantErr   bool
	}{
		{testClient{}, "/pxelinux.0", "pxelinux.0", 46_000, false},
		{testClient{sizeOnly: true, options: opts("tsize", "0")}, "pxelinux.0", "pxelinux.0", 0, true},
		{testClient{}, "missing", "", 0, false}, // refused: no event
	}
	for _, tt := range tests {
		tt.client.get(t, srv.Addr(), tt.name) // errors are part of some cases; the events are checked
		if tt.wantFile == "" {
			continue
		}
		var tr Transfer
		select {
		case tr = <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no OnTransfer call", tt.name)
		}
		if tr.File != tt.wantFile || tr.Bytes != tt.wantBytes || (tr.Err != nil) != tt.wantErr {
			t.Errorf("%s: got file %q bytes %d err %v; want %q, %d, error %v", tt.name, tr.File, tr.Bytes, tr.Err, tt.wantFile, tt.wantBytes, tt.wantErr)
		}
		if !tr.Client.Addr().IsLoopback() || tr.Start.Before(before) || tr.End.Before(tr.Start) {
			t.Errorf("%s: client %s, start %v, end %v", tt.name, tr.Client, tr.Start, tr.End)
		}
	}
	select {
	case tr := <-got:
		t.Errorf("unexpected event %+v", tr)
	case <-time.After(200 * time.Millisecond):
	}
}
