package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/store/storetest"
)

// The plant database goes down (a real PostgreSQL server stopped) while the line works on:
// nothing is held, the changes wait in the line's file, and when PostgreSQL is back they are
// delivered in order and exactly once.
func TestPlantOutage(t *testing.T) {
	ctx := context.Background()
	cluster := storetest.OwnCluster(t)
	dsn := cluster.DSN
	p, err := OpenPlant(ctx, PlantOptions{Path: filepath.Join(t.TempDir(), "line.db"), DSN: dsn, Line: "L1", Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	stopped := false
	defer func() {
		if stopped {
			cluster.Start(t)
		}
	}()
	device := func(i int) (id, serial, mac string) {
		return fmt.Sprintf("r%03d", i), fmt.Sprintf("S%03d", i), fmt.Sprintf("02:00:00:00:01:%02x", i)
	}
	run := func(i int) {
		t.Helper()
		id, serial, mac := device(i)
		if err := p.StartRun(ctx, NewRun{RunID: id, Serial: serial, MAC: mac, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for seq := int64(1); seq <= 3; seq++ {
			if _, err := p.AddEvents(ctx, id, serial, []protocol.Event{{Seq: seq, Kind: protocol.EventLog, Time: time.Now(), Message: fmt.Sprint("e", seq)}}); err != nil {
				t.Fatal(err)
			}
		}
		res := protocol.Result{RunID: id, Serial: serial, Status: protocol.StatusPass,
			Steps: []protocol.StepResult{{Name: "a", Status: protocol.StatusPass, Measurements: []protocol.Measurement{{Name: "m", Value: f64(float64(i))}}}}}
		for range 2 { // the agent's retry after a lost acknowledgement
			if _, err := p.PutResult(ctx, res); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 5 {
		run(i)
	}
	if b, _ := p.Backlog(ctx); b.Pending != 0 || !b.Reachable {
		t.Fatalf("with PostgreSQL up, results wait for their delivery: backlog %+v", b)
	}

	cluster.Stop(t)
	stopped = true
	start := time.Now()
	for i := 5; i < 25; i++ {
		run(i)
	}
	// A device of before the outage is reset during it: after its pass, in the plant too.
	_, _, mac2 := device(2)
	if err := p.ResetDevice(ctx, mac2); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("20 devices took %v with the plant database down: something waited for it", d)
	}
	b, err := p.Backlog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Reachable || b.Results != 20 || b.Pending != 20*(1+3+1)+1 || b.Oldest == nil {
		t.Fatalf("backlog during the outage %+v", b)
	}
	// The line itself still decides: the new devices boot their disk.
	_, _, mac9 := device(9)
	if lb, err := p.LocalBoot(ctx, mac9); err != nil || !lb {
		t.Fatalf("line's boot decision during the outage: %v %v", lb, err)
	}

	cluster.Start(t)
	stopped = false
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err = p.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Pending == 0 && b.Reachable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog not delivered within a minute of PostgreSQL's return: %+v", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b.Failed != 0 || b.LastDelivery == nil {
		t.Fatalf("backlog after delivery %+v", b)
	}
	pg, err := OpenOptions(ctx, Options{Driver: DriverPostgres, DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	c, err := pg.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Devices: 25, Runs: 25, Results: 25, Steps: 25, Measurements: 25, Events: 75}); c != want {
		t.Fatalf("plant database after the outage: %+v, want %+v", c, want)
	}
	for i := range 25 {
		_, _, mac := device(i)
		want := BootLocal
		if i == 2 {
			want = BootProvision
		}
		if m, _ := pg.BootMode(ctx, mac); m != want {
			t.Errorf("device %d in the plant database: %s, want %s", i, m, want)
		}
	}
	id, _, _ := device(17)
	d, err := pg.RunDetail(ctx, id, true)
	if err != nil || d.Line != "L1" || d.Status != "pass" || len(d.Events) != 3 || d.Events[2].Message != "e3" {
		t.Fatalf("run delivered after the outage: %v %+v", err, d)
	}
}

func TestCoalesce(t *testing.T) {
	ev := func(seq int64, run, kind string) queued {
		q := queued{seq: seq, op: op{Kind: kind, RunID: run}}
		switch kind {
		case opEvents:
			q.op.Events = []protocol.Event{{Seq: seq}}
		case opResult:
			q.op.RunID, q.op.Result = "", &protocol.Result{RunID: run}
		}
		return q
	}
	in := []queued{ev(1, "a", opEvents), ev(2, "b", opEvents), ev(3, "a", opEvents), ev(4, "a", opResult),
		ev(5, "a", opEvents), ev(6, "b", opEvents)}
	var got []string
	for _, q := range coalesce(in) {
		var seqs []int64
		for _, e := range q.op.Events {
			seqs = append(seqs, e.Seq)
		}
		got = append(got, fmt.Sprint(q.op.Kind, seqs))
	}
	// a's events before its result merge; the one after stays after it.
	want := "[events[1 3] events[2 6] result[] events[5]]"
	if fmt.Sprint(got) != want {
		t.Errorf("coalesce: %v, want %v", got, want)
	}
}
