package dashboard_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/dashboard"
	"github.com/flashline/flashline/server/store"
	"github.com/flashline/flashline/server/store/storetest"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// Two lines share one PostgreSQL database: each dashboard shows its own line by default and
// every line with ?line=*; figures and exports follow; the status says nothing is queued.
func TestTwoLinesOnePlantDatabase(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	lines := map[string]*line{}
	for _, name := range []string{"A", "B"} {
		p, err := store.OpenPlant(ctx, store.PlantOptions{Path: filepath.Join(t.TempDir(), "results.db"), DSN: dsn, Line: name})
		if err != nil {
			t.Fatal(err)
		}
		lines[name] = newLineWith(t, p)
	}
	pass := func(l *line, mac, serial string, st protocol.Status) {
		job := l.job(t, mac, serial)
		if _, err := l.client.PutResult(ctx, protocol.Result{RunID: job.RunID, Serial: serial, Status: st, Secret: l.secret(job.RunID)}); err != nil {
			t.Fatal(err)
		}
	}
	pass(lines["A"], "52:54:00:00:0a:01", "SA1", protocol.StatusPass)
	pass(lines["A"], "52:54:00:00:0a:02", "SA2", protocol.StatusFail)
	pass(lines["B"], "52:54:00:00:0b:01", "SB1", protocol.StatusPass)
	serials := func(url string) string {
		var devs []store.Device
		getJSON(t, url, &devs)
		var s []string
		for _, d := range devs {
			s = append(s, d.Line+"/"+d.Serial)
		}
		sort.Strings(s)
		return strings.Join(s, " ")
	}
	a := lines["A"].srv.URL
	for _, tt := range []struct{ q, want string }{
		{"", "A/SA1 A/SA2"},
		{"?line=*", "A/SA1 A/SA2 B/SB1"},
		{"?line=B", "B/SB1"},
	} {
		if got := serials(a + "/dashboard/api/devices" + tt.q); got != tt.want {
			t.Errorf("devices%s on line A's dashboard: %s, want %s", tt.q, got, tt.want)
		}
	}
	var st dashboard.Status
	getJSON(t, a+"/dashboard/api/status", &st)
	if st.Line != "A" || st.Backlog.Driver != "postgres" || st.Backlog.Pending != 0 || !st.Backlog.Reachable {
		t.Errorf("status %+v", st)
	}
	var f store.Figures
	getJSON(t, a+"/dashboard/api/figures?line=*", &f)
	if f.Total.Finished != 3 || f.Total.Passed != 2 || len(f.Lines) != 2 || f.Lines[0].Yield != 0.5 || f.Lines[1].Yield != 1 {
		t.Errorf("plant figures %+v", f)
	}
	getJSON(t, a+"/dashboard/api/figures", &f)
	if f.Total.Finished != 2 || f.Total.Line != "A" {
		t.Errorf("line A figures %+v", f)
	}
	resp, err := http.Get(lines["B"].srv.URL + "/dashboard/api/export?line=*&format=csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	byLine := map[string]int{}
	for _, r := range recs[1:] {
		if r[0] == "run" {
			byLine[r[len(r)-1]]++
		}
	}
	if byLine["A"] != 2 || byLine["B"] != 1 {
		t.Errorf("plant CSV export runs per line %v", byLine)
	}
	for _, bad := range []string{"/dashboard/api/figures?since=yesterday", "/dashboard/api/export?format=xml", "/dashboard/api/devices?line="} {
		resp, _ := http.Get(a + bad)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", bad, resp.StatusCode)
		}
		resp.Body.Close()
	}
}

// With the plant database unreachable the line goes on (the result is acknowledged at once)
// and the page says how much waits for it.
func TestDashboardShowsQueueInChromium(t *testing.T) {
	ctx := context.Background()
	// A socket directory that does not exist: PostgreSQL is "down" from the start.
	dsn := "postgres:///flashline?host=" + filepath.Join(t.TempDir(), "nowhere") + "&user=flashline&connect_timeout=1"
	p, err := store.OpenPlant(ctx, store.PlantOptions{Path: filepath.Join(t.TempDir(), "results.db"), DSN: dsn, Line: "L3"})
	if err != nil {
		t.Fatal(err)
	}
	l := newLineWith(t, p)
	job := l.job(t, "52:54:00:00:0c:01", "SC1")
	start := time.Now()
	if _, err := l.client.PutResult(ctx, protocol.Result{RunID: job.RunID, Serial: "SC1", Status: protocol.StatusPass, Secret: l.secret(job.RunID)}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("result took %v with the plant database down", d)
	}
	if lb, _ := p.LocalBoot(ctx, "52:54:00:00:0c:01"); !lb {
		t.Error("the line did not switch the passed device to local boot")
	}
	b := startBrowser(t, l.srv.URL+"/")
	got := b.waitFor(t, `document.getElementById("backlog").hidden ? "" : document.getElementById("backlog").textContent`,
		"plant database unreachable")
	if !strings.Contains(got, "(1 results)") {
		t.Errorf("queue banner %q does not count the result", got)
	}
	b.waitFor(t, `document.getElementById("linename").textContent`, "line L3")
}
