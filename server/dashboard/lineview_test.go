package dashboard_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/dashboard"
)

// The line view's read APIs without a browser: search, its refusals, the export of a filter
// with the station columns, and the overview's station with its SILENT deadline.
func TestLineViewAPI(t *testing.T) {
	l := newStationLine(t)
	j1, _ := l.stationJob(t, 1, "GMB3-000A", "GM-Box 3")
	j2, _ := l.stationJob(t, 2, "gmb3-000b", "GM-Box 3")
	l.result(t, j2, protocol.Result{Status: protocol.StatusFail, FailedStep: "eMMC", Reason: "no eMMC"})
	get := func(path string, v any) int {
		t.Helper()
		resp, err := http.Get(l.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil && resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode
	}
	var sr dashboard.SearchResult
	if code := get("/dashboard/api/search?q=000b", &sr); code != 200 || len(sr.Devices) != 1 || sr.Devices[0].Serial != "gmb3-000b" || sr.More {
		t.Fatalf("search 000b: %d %+v", code, sr)
	}
	if code := get("/dashboard/api/search?q=01:01&station=bench-1", &sr); code != 200 || len(sr.Devices) != 1 || sr.Devices[0].Run.SilentAt == nil {
		t.Fatalf("search by MAC and station: %d %+v", code, sr)
	}
	if code := get("/dashboard/api/search?limit=1", &sr); code != 200 || len(sr.Devices) != 1 || !sr.More || sr.Limit != 1 {
		t.Fatalf("limit not reported: %d %+v", code, sr)
	}
	for _, bad := range []string{"?status=broken", "?since=yesterday", "?q=" + strings.Repeat("x", 300)} {
		if code := get("/dashboard/api/search"+bad, nil); code != http.StatusBadRequest {
			t.Errorf("search %s: %d, want 400", bad[:min(len(bad), 20)], code)
		}
	}
	var ov dashboard.Overview
	if code := get("/dashboard/api/line", &ov); code != 200 || len(ov.Stations) != 6 || ov.Stations[0].Run == nil ||
		ov.Stations[0].Run.RunID != j1.RunID || ov.Stations[0].Run.StepsTotal != 3 || ov.Stations[0].Run.SilentAt == nil || len(ov.Windows) != 3 {
		t.Fatalf("overview: %d %+v", code, ov)
	}
	if ov.Stations[2].Run != nil {
		t.Errorf("bench-3 should be free: %+v", ov.Stations[2].Run)
	}
	resp, err := http.Get(l.srv.URL + "/dashboard/api/export?format=csv&status=fail")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	head := strings.Join(recs[0], ",")
	if !strings.HasSuffix(head, ",station,station_source,station_port,line") {
		t.Errorf("export header %s", head)
	}
	for _, r := range recs[1:] {
		if r[1] != j2.RunID || r[len(r)-4] != "bench-2" || r[len(r)-3] != "config" {
			t.Errorf("export of status=fail has %v", r)
		}
	}
	if len(recs) < 2 {
		t.Error("export of status=fail is empty")
	}
}
