package store

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
)

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func f64(v float64) *float64 { return &v }

func startRun(t *testing.T, s *Store, id, serial, mac string) {
	t.Helper()
	err := s.StartRun(context.Background(), NewRun{RunID: id, Serial: serial, MAC: mac, Product: "GM-Box 3",
		Scenario: "box.yaml", Image: "os", IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour),
		Timings: []protocol.PhaseTiming{{Phase: "dhcp", DurationMS: 1200}, {Phase: "kernel", DurationMS: 2800}}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEventsIdempotentAndAckPrefix(t *testing.T) { eachBackend(t, testEventsIdempotentAndAckPrefix) }

func testEventsIdempotentAndAckPrefix(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	startRun(t, s, "r1", "S1", "52:54:00:12:34:56")
	ev := func(seq int64, kind, step string, st protocol.Status) protocol.Event {
		return protocol.Event{Seq: seq, Time: time.Now(), Kind: kind, Step: step, Status: st}
	}
	tests := []struct {
		name    string
		batch   []protocol.Event
		wantAck EventsAck
		step    string
	}{
		{"first", []protocol.Event{ev(1, protocol.EventPhase, "", protocol.StatusRunning), ev(2, protocol.EventStep, "wifi", protocol.StatusRunning)}, EventsAck{Seq: 2}, "wifi"},
		{"repeat", []protocol.Event{ev(1, protocol.EventPhase, "", protocol.StatusRunning), ev(2, protocol.EventStep, "wifi", protocol.StatusRunning)}, EventsAck{Seq: 2}, "wifi"},
		{"out of order in a batch", []protocol.Event{ev(4, protocol.EventStep, "lte", protocol.StatusRunning), ev(3, protocol.EventStep, "wifi", protocol.StatusPass)}, EventsAck{Seq: 4}, "lte"},
		// The device dropped 5..7 (queue overflow): acknowledged past them, counted once.
		{"agent dropped some", []protocol.Event{ev(8, protocol.EventStep, "lte", protocol.StatusPass), ev(9, protocol.EventStep, "emmc", protocol.StatusRunning)}, EventsAck{Seq: 9, Skipped: 3}, "emmc"},
		{"old repeat after the gap", []protocol.Event{ev(3, protocol.EventStep, "wifi", protocol.StatusPass)}, EventsAck{Seq: 9}, "emmc"},
		{"late arrival inside the gap", []protocol.Event{ev(6, protocol.EventLog, "", "")}, EventsAck{Seq: 9}, "emmc"},
	}
	for _, tt := range tests {
		ack, err := s.AddEvents(ctx, "r1", "S1", tt.batch)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if ack != tt.wantAck {
			t.Errorf("%s: ack %+v, want %+v", tt.name, ack, tt.wantAck)
		}
		r, _ := s.Run(ctx, "r1")
		if r.Step != tt.step || r.Status != "running" {
			t.Errorf("%s: run step %q status %q", tt.name, r.Step, r.Status)
		}
	}
	c, _ := s.Count(ctx)
	if c.Events != 7 {
		t.Errorf("events stored %d, want 7", c.Events)
	}
	if _, err := s.AddEvents(ctx, "nope", "", []protocol.Event{ev(1, "log", "", "")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown run: %v", err)
	}
	if _, err := s.AddEvents(ctx, "r1", "OTHER", []protocol.Event{ev(6, "log", "", "")}); !errors.Is(err, ErrMismatch) {
		t.Errorf("other serial: %v", err)
	}
}

func TestResultOnceBootModeResetAndPersistence(t *testing.T) {
	eachBackend(t, testResultOnceBootModeResetAndPersistence)
}

func testResultOnceBootModeResetAndPersistence(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	mac := "52:54:00:AA:BB:01"
	startRun(t, s, "r1", "S1", mac)
	if lb, _ := s.LocalBoot(ctx, "52-54-00-aa-bb-01"); lb {
		t.Fatal("new device already on local boot")
	}
	res := protocol.Result{RunID: "r1", Serial: "S1", MAC: strings.ToLower(mac), Status: protocol.StatusPass, Finished: time.Now(),
		Steps: []protocol.StepResult{
			{Name: "Wi-Fi", Check: "wifi.scan", Status: protocol.StatusPass, Attempts: 1, DurationMS: 900,
				Measurements: []protocol.Measurement{{Name: "signal_dbm", Value: f64(-52), Unit: "dBm"}, {Name: "ssid", Text: "LINE"}}},
			{Name: "eMMC", Check: "disk.present", Status: protocol.StatusPass, Attempts: 1},
		},
		Flash:   &protocol.FlashResult{Target: "/dev/vda", Bytes: 1 << 20, Format: "zstd", DurationMS: 3000},
		Timings: []protocol.PhaseTiming{{Phase: "scenario", DurationMS: 1500}, {Phase: "flash", DurationMS: 3000}}}
	for i, wantDup := range []bool{false, true, true} {
		dup, err := s.PutResult(ctx, res)
		if err != nil || dup != wantDup {
			t.Fatalf("put %d: dup=%v err=%v, want dup=%v", i, dup, err, wantDup)
		}
	}
	bad := res
	bad.Serial = "S2"
	if _, err := s.PutResult(ctx, bad); !errors.Is(err, ErrMismatch) {
		t.Errorf("result of another serial: %v", err)
	}
	bad = res
	bad.RunID = "r404"
	if _, err := s.PutResult(ctx, bad); !errors.Is(err, ErrNotFound) {
		t.Errorf("result of unknown run: %v", err)
	}
	if lb, _ := s.LocalBoot(ctx, mac); !lb {
		t.Fatal("passed device not on local boot")
	}
	s.Close()

	// Everything survives a reopen; the migration does not run twice.
	s = open()
	c, err := s.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c != (Counts{Devices: 1, Runs: 1, Results: 1, Steps: 2, Measurements: 2, Timings: 4}) {
		t.Fatalf("counts after reopen %+v", c)
	}
	if lb, _ := s.LocalBoot(ctx, mac); !lb {
		t.Fatal("boot mode lost on reopen")
	}
	if err := s.ResetDevice(ctx, mac); err != nil {
		t.Fatal(err)
	}
	if lb, _ := s.LocalBoot(ctx, mac); lb {
		t.Fatal("reset device still on local boot")
	}
	if err := s.ResetDevice(ctx, "02:00:00:00:00:99"); !errors.Is(err, ErrNotFound) {
		t.Errorf("reset unknown: %v", err)
	}

	// A failed newer run keeps the device on provisioning.
	startRun(t, s, "r2", "S1", mac)
	if _, err := s.PutResult(ctx, protocol.Result{RunID: "r2", Serial: "S1", Status: protocol.StatusFail, FailedStep: "Wi-Fi"}); err != nil {
		t.Fatal(err)
	}
	if lb, _ := s.LocalBoot(ctx, mac); lb {
		t.Fatal("failed device on local boot")
	}

	var js bytes.Buffer
	if err := s.ExportJSON(ctx, &js, "S1"); err != nil {
		t.Fatal(err)
	}
	var ex Export
	if err := json.Unmarshal(js.Bytes(), &ex); err != nil {
		t.Fatal(err)
	}
	if len(ex.Runs) != 2 || ex.Runs[1].RunID != "r1" || len(ex.Runs[1].Steps) != 2 ||
		*ex.Runs[1].Steps[0].Measurements[0].Value != -52 || len(ex.Runs[1].Timings) != 4 || ex.Runs[1].Flash.Format != "zstd" {
		t.Fatalf("json export: %s", js.String())
	}
	var cs bytes.Buffer
	if err := s.ExportCSV(ctx, &cs, "S1"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&cs).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, r := range recs[1:] {
		kinds[r[0]]++
		if len(r) != len(CSVHeader()) {
			t.Fatalf("row %v has %d columns", r, len(r))
		}
	}
	if kinds["run"] != 2 || kinds["step"] != 2 || kinds["measurement"] != 2 || kinds["timing"] != 6 || kinds["flash"] != 1 {
		t.Fatalf("csv rows %v:\n%s", kinds, cs.String())
	}
}
