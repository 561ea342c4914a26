package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Swarm makes the line server a BitTorrent tracker and seed for its images (server/swarm),
// so that the line's devices share an image among themselves instead of each taking a
// whole copy through the server's uplink.
type Swarm struct {
	Enabled bool `yaml:"enabled"`
	// UploadRate caps what the seed sends to peers, in bytes per second or with a unit
	// ("100Mbit/s", "12MB/s", "12MiB/s"); 0 (default) is no cap. Plain HTTP downloads and
	// the web seed are not covered by it.
	UploadRate Rate `yaml:"upload_rate"`
	// Linger is how long a device keeps seeding after it has flashed and verified the image
	// (the job's linger_seconds; default 1m, 0 means no linger).
	Linger *time.Duration `yaml:"linger"`
	// PeerPort is the TCP port the seed listens on for peers (default 6881).
	PeerPort int `yaml:"peer_port"`
	// Images switches single image files out of the swarm: {<file under images_dir>: false}.
	// Every image not listed is in it.
	Images map[string]bool `yaml:"images"`
}

// Swarm defaults.
const (
	DefaultSwarmLinger   = time.Minute
	DefaultSwarmPeerPort = 6881
)

// LingerSeconds is the job's linger_seconds: the configured linger in whole seconds, -1 for
// an explicit 0 (no linger; 0 on the wire means the agent's default).
func (s Swarm) LingerSeconds() int {
	d := DefaultSwarmLinger
	if s.Linger != nil {
		d = *s.Linger
	}
	if d <= 0 {
		return -1
	}
	return int(math.Ceil(d.Seconds()))
}

// ImageOn reports whether the image file is offered in the swarm.
func (s Swarm) ImageOn(file string) bool {
	if !s.Enabled {
		return false
	}
	on, listed := s.Images[file]
	return !listed || on
}

func (c *Config) validateSwarm() []error {
	s := c.Swarm
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.PeerPort < 0 || s.PeerPort > 65535 {
		bad("swarm.peer_port %d: want 1-65535 (0 for the default %d)", s.PeerPort, DefaultSwarmPeerPort)
	}
	if s.UploadRate < 0 {
		bad("swarm.upload_rate: must not be negative")
	}
	if s.Linger != nil && *s.Linger < 0 {
		bad("swarm.linger %s: must not be negative (0 is no linger)", *s.Linger)
	}
	if s.Linger != nil && *s.Linger > 24*time.Hour {
		bad("swarm.linger %s: at most 24h (a device lingers before its after-action)", *s.Linger)
	}
	files := map[string]bool{}
	for _, im := range c.Images {
		files[im.File] = true
	}
	for f := range s.Images {
		if !files[f] {
			bad("swarm.images: %q is not the file of any entry in images", f)
		}
	}
	if s.Enabled {
		if !c.HTTP.Enabled || !On(c.HTTP.Images) {
			bad("swarm.enabled: needs http.enabled and http.images (the torrents, the tracker and the web seed are served over HTTP)")
		}
	}
	return errs
}

// Rate is a transfer rate in bytes per second, written as a number of bytes per second or
// with a unit: "100Mbit/s", "1Gbit/s", "12.5MB/s", "10MiB/s" ("/s" may be left out).
type Rate int64

// UnmarshalYAML accepts 0, 1250000, "100Mbit/s", "12MiB/s".
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRate(n.Value)
	if err != nil {
		return err
	}
	*r = Rate(v)
	return nil
}

// ParseRate parses a rate: bytes per second as a number, a size with a byte unit (ParseBytes),
// or bits with a decimal bit unit (bit, kbit, Mbit, Gbit; also bps, kbps, Mbps, Gbps), with or
// without "/s".
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "/S")
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	bits := map[string]float64{"bit": 1, "bps": 1, "kbit": 1e3, "kbps": 1e3, "mbit": 1e6, "mbps": 1e6, "gbit": 1e9, "gbps": 1e9}[unit]
	if bits == 0 {
		v, err := ParseBytes(t)
		if err != nil {
			return 0, fmt.Errorf("rate %q: want bytes per second, or a number with a unit such as 100Mbit/s, 12MB/s or 10MiB/s", s)
		}
		return v, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || f < 0 || f*bits/8 > 1<<62 {
		return 0, fmt.Errorf("rate %q: not a valid rate", s)
	}
	return int64(f * bits / 8), nil
}
