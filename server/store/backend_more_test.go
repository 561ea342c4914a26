package store

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/store/storetest"
)

// Many goroutines retry the same final results at once (agents whose acknowledgements were
// lost): each result is stored once, exactly one attempt per run is not a duplicate, and the
// device ends on local boot.
func TestConcurrentResultRetries(t *testing.T) { eachBackend(t, testConcurrentResultRetries) }

func testConcurrentResultRetries(t *testing.T, open func() *Store) {
	ctx := context.Background()
	s := open()
	const runs, tries = 20, 16
	for i := range runs {
		startRun(t, s, fmt.Sprintf("r%d", i), fmt.Sprintf("S%d", i), fmt.Sprintf("52:54:00:00:01:%02x", i))
	}
	var mu sync.Mutex
	fresh := map[string]int{}
	var wg sync.WaitGroup
	for i := range runs {
		for range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := protocol.Result{RunID: fmt.Sprintf("r%d", i), Serial: fmt.Sprintf("S%d", i), Status: protocol.StatusPass,
					Steps: []protocol.StepResult{{Name: "a", Status: protocol.StatusPass,
						Measurements: []protocol.Measurement{{Name: "m", Value: f64(1)}}}, {Name: "b", Status: protocol.StatusPass}},
					Timings: []protocol.PhaseTiming{{Phase: "flash", DurationMS: 5}}}
				dup, err := s.PutResult(ctx, res)
				if err != nil {
					t.Error(err)
					return
				}
				if !dup {
					mu.Lock()
					fresh[res.RunID]++
					mu.Unlock()
				}
			}()
		}
	}
	// Events for the same runs at the same time, each batch sent twice.
	for i := range runs {
		for k := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				evs := []protocol.Event{{Seq: int64(k%2*2 + 1), Kind: protocol.EventLog, Time: time.Now()}, {Seq: int64(k%2*2 + 2), Kind: protocol.EventLog, Time: time.Now()}}
				if _, err := s.AddEvents(ctx, fmt.Sprintf("r%d", i), "", evs); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	for i := range runs {
		id := fmt.Sprintf("r%d", i)
		if fresh[id] != 1 {
			t.Errorf("run %s stored as new %d times, want 1", id, fresh[id])
		}
		if lb, _ := s.LocalBoot(ctx, fmt.Sprintf("52:54:00:00:01:%02x", i)); !lb {
			t.Errorf("run %s passed but its device is not on local boot", id)
		}
	}
	c, err := s.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{Devices: runs, Runs: runs, Results: runs, Steps: 2 * runs, Measurements: runs, Events: 4 * runs, Timings: 3 * runs}
	if c != want {
		t.Errorf("rows %+v, want %+v", c, want)
	}
}

// A database migrated by a newer server is refused with a clear message.
func TestSchemaNewerRefused(t *testing.T) {
	for _, driver := range []string{DriverSQLite, DriverPostgres} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			o := Options{Driver: driver}
			if driver == DriverSQLite {
				o.Path = filepath.Join(t.TempDir(), "db.sqlite")
			} else {
				o.DSN = storetest.PostgresDSN(t)
			}
			s, err := OpenOptions(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			bump := `PRAGMA user_version = 99`
			if driver == DriverPostgres {
				bump = `UPDATE schema_version SET version = 99`
			}
			if _, err := s.w.ExecContext(ctx, bump); err != nil {
				t.Fatal(err)
			}
			s.Close()
			_, err = OpenOptions(ctx, o)
			if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "schema_version 99") {
				t.Fatalf("open of a newer schema: %v", err)
			}
		})
	}
}

// Two lines share one PostgreSQL database: every run carries its line, and devices, figures
// and exports are per line or for the whole plant.
func TestLinesShareOneDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	open := func(line string) *Store {
		s, err := OpenOptions(ctx, Options{Driver: DriverPostgres, DSN: dsn, Line: line})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("A"), open("B")
	put := func(s *Store, id, serial, mac string, st protocol.Status) {
		startRun(t, s, id, serial, mac)
		if _, err := s.PutResult(ctx, protocol.Result{RunID: id, Serial: serial, Status: st,
			Steps: []protocol.StepResult{{Name: "x", Status: st}}}); err != nil {
			t.Fatal(err)
		}
	}
	put(a, "a1", "S1", "02:00:00:00:00:01", protocol.StatusPass)
	put(a, "a2", "S2", "02:00:00:00:00:02", protocol.StatusFail)
	put(b, "b1", "S3", "02:00:00:00:00:03", protocol.StatusPass)
	put(b, "b2", "S2", "02:00:00:00:00:02", protocol.StatusPass) // the failed one, repaired, passes on B
	for _, tt := range []struct {
		line string
		want string
	}{{"A", "02:00:00:00:00:01"}, {"B", "02:00:00:00:00:02 02:00:00:00:00:03"}, {AllLines, "02:00:00:00:00:01 02:00:00:00:00:02 02:00:00:00:00:03"}} {
		devs, err := a.DevicesOn(ctx, tt.line, time.Time{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		var macs []string
		for _, d := range devs {
			macs = append(macs, d.MAC)
		}
		if got := strings.Join(sorted(macs), " "); got != tt.want {
			t.Errorf("devices on %q: %s, want %s", tt.line, got, tt.want)
		}
	}
	h, err := a.History(ctx, "S2", HistoryOptions{})
	if err != nil || len(h) != 2 || h[0].Line != "B" || h[1].Line != "A" {
		t.Fatalf("S2's history across lines: %v %+v", err, h)
	}
	f, err := b.Figures(ctx, FiguresFilter{Line: AllLines})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Lines) != 2 || f.Lines[0].Line != "A" || f.Lines[0].Finished != 2 || f.Lines[0].Yield != 0.5 ||
		f.Lines[1].Passed != 2 || f.Lines[1].Yield != 1 || f.Total.Finished != 4 || f.Total.Passed != 3 || f.Total.Devices != 3 {
		t.Fatalf("figures: %+v", f)
	}
	if want := 3.0 / 24; f.Total.DevicesPerHour != want {
		t.Errorf("plant devices per hour %v, want %v", f.Total.DevicesPerHour, want)
	}
	fa, _ := b.Figures(ctx, FiguresFilter{Line: "A"})
	if len(fa.Lines) != 1 || fa.Total.Finished != 2 || fa.Total.Devices != 1 {
		t.Errorf("line A figures: %+v", fa)
	}
	var out bytes.Buffer
	if err := a.ExportRuns(ctx, &out, FiguresFilter{Line: "B"}, "csv"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]bool{}
	for _, r := range recs[1:] {
		if r[len(r)-1] != "B" {
			t.Errorf("line B export has a row of line %q", r[len(r)-1])
		}
		runs[r[1]] = true
	}
	if len(runs) != 2 || !runs["b1"] || !runs["b2"] {
		t.Errorf("line B export runs %v", runs)
	}
	out.Reset()
	if err := a.ExportRuns(ctx, &out, FiguresFilter{}, "json"); err != nil {
		t.Fatal(err)
	}
	var ex LineExport
	if err := json.Unmarshal(out.Bytes(), &ex); err != nil || len(ex.Runs) != 4 {
		t.Fatalf("plant export: %v, %d runs", err, len(ex.Runs))
	}
}

func sorted(s []string) []string { sort.Strings(s); return s }

func TestRebind(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{"SELECT '?', \"a?\" FROM t WHERE x = ?", "SELECT '?', \"a?\" FROM t WHERE x = $1"},
		{"SELECT 'it''s ?' , ?", "SELECT 'it''s ?' , $1"},
		{"-- why?\nSELECT ?", "-- why?\nSELECT $1"},
		{"SELECT 'unterminated ?", "SELECT 'unterminated ?"},
	} {
		if got := rebind(tt.in); got != tt.want {
			t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzRebind(f *testing.F) {
	f.Add("SELECT a FROM t WHERE b = ? AND c = '?'")
	f.Add("-- ?\n?")
	f.Fuzz(func(t *testing.T, q string) {
		out := rebind(q)
		// Outside quotes and comments every ? became $n, numbered from 1; nothing else changed.
		if !strings.Contains(q, "?") && out != q {
			t.Fatalf("rebind changed %q without placeholders into %q", q, out)
		}
		if strings.Count(out, "?") > strings.Count(q, "?") {
			t.Fatalf("rebind added placeholders: %q -> %q", q, out)
		}
	})
}

// A line's SQLite file from before lines were named (schema 1) is migrated at open, and its
// runs and devices become the configured line's.
func TestSQLiteMigratesOlderFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, s, "r1", "S1", "52:54:00:00:00:01")
	// Back to what a schema-1 server left: no run secrets, no audit log, no line columns, no outbox.
	for _, q := range []string{`DROP INDEX runs_line`, `DROP INDEX devices_line`, `ALTER TABLE runs DROP COLUMN line`,
		`ALTER TABLE devices DROP COLUMN line`, `DROP TABLE outbox`,
		`ALTER TABLE runs DROP COLUMN secret_hash`, `DROP INDEX audit_time`, `DROP TABLE audit`,
		// and none of migration 4's line view
		`DROP INDEX runs_station`, `DROP INDEX runs_finished`, `DROP TABLE unmatched`, `ALTER TABLE devices DROP COLUMN station`,
		`ALTER TABLE runs DROP COLUMN station`, `ALTER TABLE runs DROP COLUMN station_source`, `ALTER TABLE runs DROP COLUMN station_port`,
		`ALTER TABLE runs DROP COLUMN heard_at`, `ALTER TABLE runs DROP COLUMN heartbeat`, `ALTER TABLE runs DROP COLUMN steps_total`,
		`ALTER TABLE runs DROP COLUMN step_index`, `ALTER TABLE runs DROP COLUMN prompt`, `ALTER TABLE runs DROP COLUMN prompt_step`,
		`PRAGMA user_version = 1`} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()
	s, err = OpenOptions(ctx, Options{Path: path, Line: "L7"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Run(ctx, "r1")
	if err != nil || r.Line != "L7" {
		t.Fatalf("old run after the migration: %v %+v", err, r)
	}
	var v int
	s.w.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	if v != len(migrations) {
		t.Errorf("user_version %d, want %d", v, len(migrations))
	}
}
