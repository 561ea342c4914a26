package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
)

func TestLineView(t *testing.T) { eachBackend(t, testLineView) }

func testLineView(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	now := time.Now().UTC().Truncate(time.Millisecond)
	s.now = func() time.Time { return now }
	start := func(id, serial, mac, station string, hb bool) {
		t.Helper()
		if err := s.StartRun(ctx, NewRun{RunID: id, Serial: serial, MAC: mac, Product: "GM-Box 3", Scenario: "box.yaml",
			IssuedAt: now, ExpiresAt: now.Add(2 * time.Hour), Station: station, StationSource: "dhcp-relay",
			StationPort: "circuit Gi1/0/" + station, Heartbeat: hb, StepsTotal: 5}); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(id, serial string, evs ...protocol.Event) {
		t.Helper()
		if _, err := s.AddEvents(ctx, id, serial, evs); err != nil {
			t.Fatal(err)
		}
	}
	start("r1", "GMB3-000a", "52:54:00:00:00:01", "bench-1", true)
	ev("r1", "GMB3-000a",
		protocol.Event{Seq: 1, Kind: protocol.EventStep, Step: "Wi-Fi", Status: protocol.StatusRunning},
		protocol.Event{Seq: 2, Kind: protocol.EventStep, Step: "Wi-Fi", Status: protocol.StatusRunning}, // a retry
		protocol.Event{Seq: 3, Kind: protocol.EventStep, Step: "Wi-Fi", Status: protocol.StatusPass},
		protocol.Event{Seq: 4, Kind: protocol.EventStep, Step: "Power button", Status: protocol.StatusRunning},
		protocol.Event{Seq: 5, Kind: protocol.EventPrompt, Step: "Power button", Message: "Press the power button"})
	r, err := s.Run(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Station != "bench-1" || r.StationSource != "dhcp-relay" || r.StepIndex != 2 || r.StepsTotal != 5 ||
		r.Prompt != "Press the power button" || r.PromptStep != "Power button" || !r.Heartbeat {
		t.Fatalf("line view of r1: %+v", r.LineView)
	}
	if got := r.SilentAfter(time.Minute); !got.Equal(now.Add(time.Minute)) {
		t.Errorf("silent after %v, want a minute after it was last heard (%v)", got, now.Add(time.Minute))
	}
	later := now.Add(45 * time.Second)
	if err := s.Heartbeat(ctx, "r1", later); err != nil {
		t.Fatal(err)
	}
	r, _ = s.Run(ctx, "r1")
	if !r.HeardAt.Equal(later) || !r.SilentAfter(time.Minute).Equal(later.Add(time.Minute)) {
		t.Errorf("after a heartbeat: heard %v, silent after %v", r.HeardAt, r.SilentAfter(time.Minute))
	}
	if err := s.Heartbeat(ctx, "nope", later); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("heartbeat of an unknown run: %v", err)
	}
	// The step ends: its prompt goes.
	ev("r1", "GMB3-000a", protocol.Event{Seq: 6, Kind: protocol.EventStep, Step: "Power button", Status: protocol.StatusPass})
	if r, _ = s.Run(ctx, "r1"); r.Prompt != "" {
		t.Errorf("prompt kept after its step passed: %q", r.Prompt)
	}

	// An old agent (no heartbeats) is silent only when its job expires.
	start("r2", "GMB3-000B", "52:54:00:00:00:02", "bench-2", false)
	r2, _ := s.Run(ctx, "r2")
	if !r2.SilentAfter(time.Minute).Equal(r2.ExpiresAt) {
		t.Errorf("old agent silent after %v, want its expiry %v", r2.SilentAfter(time.Minute), r2.ExpiresAt)
	}

	// Results: r1 passes, r2 fails at Wi-Fi with a measurement; a third device passes later.
	sig := -71.0
	if _, err := s.PutResult(ctx, protocol.Result{RunID: "r1", Serial: "GMB3-000a", Status: protocol.StatusPass, Finished: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutResult(ctx, protocol.Result{RunID: "r2", Serial: "GMB3-000B", Status: protocol.StatusFail, FailedStep: "Wi-Fi",
		Reason: "signal -71 dBm below -65", Finished: now.Add(2 * time.Minute),
		Steps: []protocol.StepResult{{Name: "Wi-Fi", Check: "wifi.scan", Status: protocol.StatusFail, Message: "signal -71 dBm below -65",
			Measurements: []protocol.Measurement{{Name: "signal_dbm", Value: &sig, Unit: "dBm"}}}}}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	start("r3", "gmb3-000c", "52:54:00:00:00:03", "bench-1", true)
	if _, err := s.PutResult(ctx, protocol.Result{RunID: "r3", Serial: "gmb3-000c", Status: protocol.StatusPass, Finished: now.Add(4 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	st, err := s.LineStats(ctx, "L1", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.Started != 3 || st.Passed != 2 || st.Failed != 1 || st.FirstTried != 3 || st.FirstPass != 2 {
		t.Fatalf("stats %+v", st)
	}
	if st.MedianTaktS != 181 || st.MedianCycleS != 150 || st.DevicesPerHour != 1 {
		t.Errorf("takt %v s, cycle %v s, %v devices/h; want 181, 150, 1", st.MedianTaktS, st.MedianCycleS, st.DevicesPerHour)
	}
	if len(st.Pareto) != 1 || st.Pareto[0].Step != "Wi-Fi" || st.Pareto[0].Failures != 1 || st.Pareto[0].Check != "wifi.scan" ||
		len(st.Pareto[0].Measured) != 1 || *st.Pareto[0].Measured[0].Min != -71 || st.Pareto[0].Measured[0].Unit != "dBm" {
		t.Fatalf("pareto %+v", st.Pareto)
	}

	// The latest run per station.
	runs, err := s.StationRuns(ctx, "L1", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Station != "bench-1" || runs[0].RunID != "r3" || runs[1].RunID != "r2" {
		t.Fatalf("station runs %+v", runs)
	}

	// Search: substring, any case, serial or MAC in any spelling; filters.
	for _, tc := range []struct {
		q    DeviceQuery
		want string
	}{
		{DeviceQuery{Text: "000"}, "52:54:00:00:00:03 52:54:00:00:00:02 52:54:00:00:00:01"},
		{DeviceQuery{Text: "000A"}, "52:54:00:00:00:01"},
		{DeviceQuery{Text: "gmb3-000b"}, "52:54:00:00:00:02"},
		{DeviceQuery{Text: "00-00-02"}, "52:54:00:00:00:02"},
		{DeviceQuery{Text: "5254000000"}, "52:54:00:00:00:03 52:54:00:00:00:02 52:54:00:00:00:01"},
		{DeviceQuery{Text: "%"}, ""},
		{DeviceQuery{Station: "bench-1"}, "52:54:00:00:00:03 52:54:00:00:00:01"},
		{DeviceQuery{Status: "fail"}, "52:54:00:00:00:02"},
		{DeviceQuery{Product: "gm-box"}, "52:54:00:00:00:03 52:54:00:00:00:02 52:54:00:00:00:01"},
		{DeviceQuery{Text: "0", Limit: 2}, "52:54:00:00:00:03 52:54:00:00:00:02"},
	} {
		devs, more, err := s.SearchDevices(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range devs {
			got = append(got, d.MAC)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("search %+v: %v, want %s", tc.q, got, tc.want)
		}
		if more != (tc.q.Limit == 2) {
			t.Errorf("search %+v: more %v", tc.q, more)
		}
	}

	// A device no rule takes is listed with why, until it gets a job.
	u := Unmatched{MAC: "52:54:00:00:00:09", Serial: "X9", Product: "Other", Reason: "rule box: product \"Other\" does not match \"GM-Box*\"",
		Reported: Reported{Product: "Other", Modules: []string{"e1000"}}}
	for range 2 {
		if err := s.RecordUnmatched(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListUnmatched(ctx, now.Add(-time.Hour), 10)
	if err != nil || len(list) != 1 || list[0].Hellos != 2 || list[0].Reason != u.Reason || list[0].Reported.Modules[0] != "e1000" {
		t.Fatalf("unmatched: %v %+v", err, list)
	}
	now = now.Add(time.Second)
	start("r9", "X9", "52:54:00:00:00:09", "", false)
	if list, _ = s.ListUnmatched(ctx, now.Add(-time.Hour), 10); len(list) != 0 {
		t.Errorf("a device with a job is still listed as unmatched: %+v", list)
	}
}
