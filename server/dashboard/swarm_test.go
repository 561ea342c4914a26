package dashboard_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flashline/flashline/server/dashboard"
)

func TestSwarmPanelAPI(t *testing.T) {
	figures := []dashboard.SwarmImage{{File: "os.img.zst", Peers: 3, Seeders: 1, Leechers: 2, SeedBytes: 5 << 20, HTTPBytes: 1 << 20, Length: 100 << 20}}
	tests := []struct {
		name     string
		swarm    func() []dashboard.SwarmImage
		readOpen bool
		code     int
		enabled  bool
	}{
		{"no swarm", nil, true, 200, false},
		{"swarm figures", func() []dashboard.SwarmImage { return figures }, true, 200, true},
		// The panel's API is a view like the others: behind the operator guard when views are closed.
		{"views closed", func() []dashboard.SwarmImage { return figures }, false, 401, false},
	}
	for _, tt := range tests {
		d := dashboard.New(dashboard.Options{Swarm: tt.swarm, Operators: testGuard(t, tt.readOpen)})
		mux := http.NewServeMux()
		d.Register(mux)
		srv := httptest.NewServer(mux)
		res, err := http.Get(srv.URL + "/dashboard/api/swarm")
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Enabled bool                   `json:"enabled"`
			Images  []dashboard.SwarmImage `json:"images"`
		}
		if res.StatusCode == 200 {
			json.NewDecoder(res.Body).Decode(&got)
		}
		res.Body.Close()
		srv.Close()
		if res.StatusCode != tt.code || got.Enabled != tt.enabled || (tt.enabled && (len(got.Images) != 1 || got.Images[0] != figures[0])) {
			t.Errorf("%s: %d %+v", tt.name, res.StatusCode, got)
		}
	}
}
