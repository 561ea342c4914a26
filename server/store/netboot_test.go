package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
)

// The server's netboot phases are stored with the run, and a passed device's first config
// fetch afterwards is recorded once as its reboot; the history lists them in journey order.
func TestServerTimings(t *testing.T) { eachBackend(t, testServerTimings) }

func testServerTimings(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	const mac = "52:54:00:12:34:56"
	err := s.StartRun(ctx, NewRun{RunID: "r1", Serial: "S1", MAC: mac, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		Timings:       []protocol.PhaseTiming{{Phase: "kernel", DurationMS: 2800}},
		ServerTimings: []protocol.PhaseTiming{{Phase: "pxe_dhcp", DurationMS: 1000}, {Phase: "tftp", DurationMS: 8700}}})
	if err != nil {
		t.Fatal(err)
	}
	reboot := func(after time.Duration) string {
		id, d, err := s.RecordReboot(ctx, mac, now.Add(after), 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(id, " ", d)
	}
	if got := reboot(time.Minute); got != " 0s" {
		t.Errorf("before any result: recorded %q", got)
	}
	if _, err := s.PutResult(ctx, protocol.Result{RunID: "r1", Serial: "S1", Status: protocol.StatusPass,
		Timings: []protocol.PhaseTiming{{Phase: "flash", DurationMS: 900}}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		after time.Duration
		want  string
	}{
		{-time.Second, " 0s"},     // earlier than the pass
		{11 * time.Minute, " 0s"}, // too late to be the reboot
		{42 * time.Second, "r1 42s"},
		{50 * time.Second, " 0s"}, // recorded once
	} {
		if got := reboot(tt.after); got != tt.want {
			t.Errorf("config fetch %v after the pass: got %q, want %q", tt.after, got, tt.want)
		}
	}
	h, err := s.History(ctx, "S1", HistoryOptions{})
	if err != nil || len(h) != 1 {
		t.Fatalf("history: %v, %d runs", err, len(h))
	}
	want := []Timing{{"server", "pxe_dhcp", 1000}, {"server", "tftp", 8700}, {"hello", "kernel", 2800},
		{"result", "flash", 900}, {"server", PhaseReboot, 42000}}
	if fmt.Sprint(h[0].Timings) != fmt.Sprint(want) {
		t.Errorf("timings %v\nwant    %v", h[0].Timings, want)
	}

	// A failed run is not a reboot into new firmware.
	if err := s.StartRun(ctx, NewRun{RunID: "r2", Serial: "S1", MAC: mac, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutResult(ctx, protocol.Result{RunID: "r2", Serial: "S1", Status: protocol.StatusFail, FailedStep: "x"}); err != nil {
		t.Fatal(err)
	}
	if got := reboot(time.Minute); got != " 0s" {
		t.Errorf("after a failed run: recorded %q", got)
	}
}
