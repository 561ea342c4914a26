package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"unknown key", "http: {enabled: true, listn: ':80'}", `1:23: unknown key "http.listn" (did you mean "listen"?)`},
		{"bad listen", "data_dir: /d\nimages_dir: /i\nscenarios_dir: /s\nhttp: {enabled: true, listen: 'nope'}", "http.listen"},
		{"tls half", "data_dir: /d\nimages_dir: /i\nscenarios_dir: /s\nhttp: {enabled: true, tls_cert: c.pem}", "tls_cert and tls_key"},
		{"no data dir", "images_dir: /i\nscenarios_dir: /s\nhttp: {enabled: true}", "data_dir: required"},
		{"image escape", "images: [{name: a, file: ../x}]", `path element ".."`},
		{"rule unknown image", "rules: [{scenario: s.yaml, image: nope}]", `image "nope" is not in images`},
		{"bad after", "images: [{name: a, file: a.img}]\nrules: [{scenario: s.yaml, image: a, after: explode}]", "after \"explode\""},
		{"bad glob", "images: [{name: a, file: a.img}]\nrules: [{scenario: s.yaml, image: a, match: {product: '['}}]", "match.product"},
		{"bad size", "images: [{name: a, file: a.img, size: 12XB}]", "unknown unit"},
		{"bad sha", "images: [{name: a, file: a.img, sha256: xyz}]", "64 hex digits"},
		{"dhcp full needs range", "dhcp: {enabled: true, mode: full}", "dhcp.range_start"},
		{"tftp needs url", "data_dir: /d\ntftp: {enabled: true, root: /t}", "server_url"},
		{"dhcp mode", "dhcp: {enabled: true, mode: half}", "dhcp.mode"},
		{"short ttl", "jobs: {ttl: 10s}", "jobs.ttl"},
		{"store driver", "store: {driver: mysql}", `store.driver "mysql"`},
		{"postgres needs dsn", "line: A\nstore: {driver: postgres}", "store.dsn: required"},
		{"postgres needs line", "store: {driver: postgres, dsn: 'host=db'}", "line: required"},
		{"sqlite has no dsn", "store: {dsn: 'host=db'}", "store.dsn: only for driver postgres"},
		{"bad line", "line: 'line 1'", `line "line 1"`},
		{"station without name", "stations: [{circuit_id: Gi1/0/1}]", "stations[0]: name is required"},
		{"station twice", "stations: [{name: a, circuit_id: x}, {name: a, circuit_id: y}]", `stations[1]: name "a" used twice`},
		{"station placed by nothing", "stations: [{name: a}]", "nothing places a device here"},
		{"station bad mac", "stations: [{name: a, macs: [nope]}]", `macs "nope"`},
		{"station chassis alone", "stations: [{name: a, lldp_chassis: sw}]", "lldp_chassis needs lldp_port"},
		{"station unknown key", "stations: [{name: a, circuit: x}]", `unknown key "stations[0].circuit"`},
		{"heartbeat timeout short", "heartbeat: {interval: 30s, timeout: 45s}", "heartbeat.timeout 45s: at least twice"},
		{"bad shift", "shifts: ['25:00']", "shifts[0]"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestExampleConfig(t *testing.T) {
	p := filepath.Join("..", "..", "docs", "server.example.yaml")
	if _, err := os.Stat(p); err != nil {
		t.Skip("docs/server.example.yaml not written yet")
	}
	c, err := Load(p)
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	if !c.HTTP.Enabled || len(c.Rules) == 0 || !filepath.IsAbs(c.DataDir) {
		t.Fatalf("example: %+v", c)
	}
}

func TestDefaultsAndSizes(t *testing.T) {
	c, err := Parse([]byte(`
data_dir: data
images_dir: img
scenarios_dir: scen
http: {enabled: true, metrics: false}
images: [{name: os, file: os.img.zst, size: 512MiB}]
rules: [{scenario: box.yaml, image: os, target: {min_size: 16GB}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != DefaultListen || c.Jobs.TTL != DefaultTTL || c.Jobs.RetryAfter != 30*time.Second {
		t.Errorf("defaults: %+v %+v", c.HTTP, c.Jobs)
	}
	if On(c.HTTP.Metrics) || !On(c.HTTP.Dashboard) {
		t.Error("switches")
	}
	if c.Images[0].Size != 512<<20 || c.Rules[0].Target.MinSize != 16e9 || c.Rules[0].After != "reboot" || c.Rules[0].Name != "rule 1" {
		t.Errorf("sizes/defaults: %+v %+v", c.Images[0], c.Rules[0])
	}
	if c, err := Parse(nil); err != nil || c.HTTP.Enabled {
		t.Errorf("empty config: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("http: {enabled: true}\nimages: [{name: a, file: a.img}]"))
	f.Add([]byte("rules: [{scenario: ../../x, image: a, match: {macs: ['[']}}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil {
			for _, im := range c.Images {
				if CheckRelPath(im.File) != nil {
					t.Fatalf("accepted image path %q", im.File)
				}
			}
		}
	})
}

func TestLineViewKeys(t *testing.T) {
	c, err := Parse([]byte("stations:\n  - name: bench-1\n    circuit_id: Gi1/0/1\nshifts: ['22:00', '06:00']\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Stations) != 1 || c.Stations[0].CircuitID != "Gi1/0/1" || c.Heartbeat.Interval != 15*time.Second || c.Heartbeat.Timeout != time.Minute {
		t.Fatalf("line view %+v %+v", c.Stations, c.Heartbeat)
	}
	if got := c.ShiftStarts(); len(got) != 2 || got[0] != 6*time.Hour || got[1] != 22*time.Hour {
		t.Errorf("shifts %v", got)
	}
	// Positions: a problem in a station is reported at its line.
	_, err = Parse([]byte("line: a\nstations:\n  - name: x\n    macs: [bad]\n"))
	if err == nil || !strings.Contains(err.Error(), "3:") && !strings.Contains(err.Error(), "4:") {
		t.Errorf("station problem without its position: %v", err)
	}
}
