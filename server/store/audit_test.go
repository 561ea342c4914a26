package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/store/storetest"
)

// A reset records who made it, in the same transaction; a reset that fails (unknown device,
// no actor) leaves no entry and changes nothing.
func TestResetDeviceByAudits(t *testing.T) { eachBackend(t, testResetDeviceByAudits) }

func testResetDeviceByAudits(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	startRun(t, s, "r1", "S1", "52:54:00:00:02:01")
	if _, err := s.PutResult(ctx, protocol.Result{RunID: "r1", Serial: "S1", Status: protocol.StatusPass}); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetDeviceBy(ctx, "52:54:00:00:02:01", "", "x"); err == nil {
		t.Fatal("a reset without an actor was made")
	}
	if err := s.ResetDeviceBy(ctx, "02:00:00:00:00:99", "user:ana", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v, want ErrNotFound", err)
	}
	if lb, _ := s.LocalBoot(ctx, "52:54:00:00:02:01"); !lb {
		t.Fatal("a refused reset changed the device")
	}
	if log, _ := s.Audit(ctx, 10); len(log) != 0 {
		t.Fatalf("refused resets were logged: %+v", log)
	}
	before := time.Now().Add(-time.Second)
	if err := s.ResetDeviceBy(ctx, "52-54-00-00-02-01", "user:ana", "dashboard from 10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetDeviceBy(ctx, "52:54:00:00:02:01", "cli:root@line1", "flashline-server reset"); err != nil {
		t.Fatal(err)
	}
	if lb, _ := s.LocalBoot(ctx, "52:54:00:00:02:01"); lb {
		t.Fatal("the device is still on local boot after its reset")
	}
	log, err := open().Audit(ctx, 10) // read again from a reopened database
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 {
		t.Fatalf("audit log: %+v, want 2 entries", log)
	}
	// Newest first.
	want := []AuditEntry{{Actor: "cli:root@line1", Action: "reset", MAC: "52:54:00:00:02:01", Detail: "flashline-server reset"},
		{Actor: "user:ana", Action: "reset", MAC: "52:54:00:00:02:01", Detail: "dashboard from 10.0.0.5"}}
	for i, e := range log {
		if e.Actor != want[i].Actor || e.Action != want[i].Action || e.MAC != want[i].MAC || e.Detail != want[i].Detail {
			t.Errorf("entry %d: %+v, want %+v", i, e, want[i])
		}
		if e.Time.Before(before) || e.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("entry %d at %s: not the time of the reset", i, e.Time)
		}
	}
	if one, _ := s.Audit(ctx, 1); len(one) != 1 || one[0].Actor != "cli:root@line1" {
		t.Errorf("limit 1: %+v", one)
	}
}

// A line on the plant database: the reset and its audit entry reach PostgreSQL through the
// outbox, with the line named, once even when the entry is delivered twice.
func TestPlantResetAudit(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	p, err := OpenPlant(ctx, PlantOptions{Path: filepath.Join(t.TempDir(), "line.db"), DSN: dsn, Line: "L7", Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mac := "02:00:00:00:07:01"
	if err := p.StartRun(ctx, NewRun{RunID: "p1", Serial: "S7", MAC: mac, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PutResult(ctx, protocol.Result{RunID: "p1", Serial: "S7", Status: protocol.StatusPass}); err != nil {
		t.Fatal(err)
	}
	if err := p.ResetDeviceBy(ctx, mac, "token:mes", "api"); err != nil {
		t.Fatal(err)
	}
	pg := p.plant()
	deadline := time.Now().Add(10 * time.Second)
	var log []AuditEntry
	for time.Now().Before(deadline) {
		if log, err = pg.Audit(ctx, 10); err == nil && len(log) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(log) != 1 || log[0].Actor != "token:mes" || log[0].MAC != mac || !strings.HasPrefix(log[0].Detail, "line L7: ") {
		t.Fatalf("plant audit log: %+v, want the line's reset by token:mes", log)
	}
	if mode, _ := pg.BootMode(ctx, mac); mode != BootProvision {
		t.Errorf("plant boot mode %q after the reset, want %q", mode, BootProvision)
	}
	// The same outbox entry delivered again (its removal lost in a crash) adds nothing.
	o := op{Kind: opReset, At: ms(log[0].Time), MAC: mac, Actor: "token:mes", Detail: "api"}
	if err := pg.tx(ctx, func(tx *sql.Tx) error { return pg.apply(ctx, tx, o) }); err != nil {
		t.Fatal(err)
	}
	if again, _ := pg.Audit(ctx, 10); len(again) != 1 {
		t.Errorf("a reset delivered twice is logged %d times", len(again))
	}
	if local, _ := p.Audit(ctx, 10); len(local) != 1 || local[0].Detail != "api" {
		t.Errorf("line's own audit log: %+v", local)
	}
}
