package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"0", 0, false},
		{"1250000", 1250000, false},
		{"100Mbit/s", 12_500_000, false},
		{"100 Mbit/s", 12_500_000, false},
		{"1Gbit/s", 125_000_000, false},
		{"1gbps", 125_000_000, false},
		{"800kbit", 100_000, false},
		{"12MB/s", 12_000_000, false},
		{"10MiB/s", 10 << 20, false},
		{"1.5MiB", 1572864, false},
		{"", 0, true},
		{"fast", 0, true},
		{"10 furlongs/s", 0, true},
		{"-5Mbit/s", 0, true},
		{"Mbit/s", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100Mbit/s", "12MiB/s", "0", "1.5 gbps", "1e9", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRate(s)
		if err == nil && v < 0 {
			t.Fatalf("ParseRate(%q) = %d: negative without an error", s, v)
		}
	})
}

const swarmBase = base + "http: {enabled: true}\nimages:\n  - {name: os, file: os.img.zst}\n"

func TestSwarmConfig(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // problems
		check      func(t *testing.T, c *Config)
	}{
		{"absent: off, old files unchanged", swarmBase, nil, func(t *testing.T, c *Config) {
			if c.Swarm.Enabled || c.Swarm.ImageOn("os.img.zst") {
				t.Error("swarm on without being configured")
			}
		}},
		{"defaults", swarmBase + "swarm: {enabled: true}\n", nil, func(t *testing.T, c *Config) {
			if c.Swarm.PeerPort != DefaultSwarmPeerPort || c.Swarm.UploadRate != 0 || c.Swarm.LingerSeconds() != 60 || !c.Swarm.ImageOn("os.img.zst") {
				t.Errorf("defaults: %+v linger %d", c.Swarm, c.Swarm.LingerSeconds())
			}
		}},
		{"every key", swarmBase + "swarm:\n  enabled: true\n  upload_rate: 100Mbit/s\n  linger: 90s\n  peer_port: 7000\n  images: {os.img.zst: false}\n", nil,
			func(t *testing.T, c *Config) {
				s := c.Swarm
				if s.UploadRate != 12_500_000 || *s.Linger != 90*time.Second || s.LingerSeconds() != 90 || s.PeerPort != 7000 || s.ImageOn("os.img.zst") {
					t.Errorf("got %+v", s)
				}
			}},
		{"linger 0 is no linger", swarmBase + "swarm: {enabled: true, linger: 0s}\n", nil, func(t *testing.T, c *Config) {
			if c.Swarm.LingerSeconds() != -1 {
				t.Errorf("linger seconds %d, want -1", c.Swarm.LingerSeconds())
			}
		}},
		{"bad values at their positions", swarmBase + "swarm:\n  enabled: true\n  upload_rate: quick\n  linger: -1s\n  peer_port: 70000\n  images: {other.img: false}\n",
			[]string{
				`c.yaml:9:16: swarm.upload_rate: rate "quick": want bytes per second, or a number with a unit such as 100Mbit/s, 12MB/s or 10MiB/s`,
				`c.yaml:10:11: swarm.linger -1s: must not be negative (0 is no linger)`,
				`c.yaml:11:14: swarm.peer_port 70000: want 1-65535 (0 for the default 6881)`,
				`c.yaml:12:3: swarm.images: "other.img" is not the file of any entry in images`,
			}, nil},
		{"needs http images", base + "images:\n  - {name: os, file: os.img.zst}\nswarm: {enabled: true}\n",
			[]string{`c.yaml:6:18: swarm.enabled: needs http.enabled and http.images (the torrents, the tracker and the web seed are served over HTTP)`}, nil},
		{"settings without enabled", swarmBase + "swarm: {upload_rate: 1MB/s}\n",
			[]string{`c.yaml:7:1: swarm: has settings but no "enabled: true", so it is off (write enabled: true, or enabled: false to keep it off)`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ps := Check("c.yaml", []byte(tt.yaml), CheckOptions{})
			var got []string
			for _, p := range ps {
				got = append(got, p.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}
