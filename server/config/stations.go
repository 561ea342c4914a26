package config

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strings"
	"time"
)

// Station is one place on the line (bench, slot, fixture) and how the line's network names it.
// A device is placed by the first of: the DHCP relay information (option 82) its switch port
// adds, the LLDP its agent hears on the boot NIC, its MAC or serial listed here.
type Station struct {
	// Name is shown on the dashboard and stored with every run ("bench-3", "slot 12").
	Name string `yaml:"name"`
	// CircuitID and RemoteID match DHCP option 82 sub-options 1 and 2, as text or, for
	// binary IDs (Cisco's default VLAN/module/port), as lower-case hex ("000400640105").
	// With both set both must match.
	CircuitID string `yaml:"circuit_id"`
	RemoteID  string `yaml:"remote_id"`
	// LLDPPort matches the LLDP port ID (or port description) the switch announces
	// ("Gi1/0/5", "ge-0/0/12"); LLDPChassis, when set, restricts it to one switch (chassis ID
	// or system name).
	LLDPPort    string `yaml:"lldp_port"`
	LLDPChassis string `yaml:"lldp_chassis"`
	// MACs (boot NIC) and Serials (DMI serial globs) place a device without network help.
	MACs    []string `yaml:"macs"`
	Serials []string `yaml:"serials"`
}

// Heartbeat is how the line tells a device that is busy from one that went away.
type Heartbeat struct {
	// Interval is how often agents are asked to send a heartbeat during a run (default 15s).
	Interval time.Duration `yaml:"interval"`
	// Timeout: a device heard from less recently than this is shown SILENT (default 60s).
	// Agents too old to send heartbeats are SILENT only when their job expires.
	Timeout time.Duration `yaml:"timeout"`
}

// Defaults of the heartbeat block.
const (
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultHeartbeatTimeout  = 60 * time.Second
)

func (c *Config) setLineViewDefaults() {
	if c.Heartbeat.Interval == 0 {
		c.Heartbeat.Interval = DefaultHeartbeatInterval
	}
	if c.Heartbeat.Timeout == 0 {
		c.Heartbeat.Timeout = DefaultHeartbeatTimeout
	}
}

func (c *Config) validateLineView() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Heartbeat.Interval < time.Second {
		bad("heartbeat.interval %s: at least 1s", c.Heartbeat.Interval)
	}
	if c.Heartbeat.Timeout < 2*c.Heartbeat.Interval {
		bad("heartbeat.timeout %s: at least twice heartbeat.interval (%s), or one late heartbeat marks a busy device SILENT", c.Heartbeat.Timeout, c.Heartbeat.Interval)
	}
	for i, sh := range c.Shifts {
		if _, err := parseClock(sh); err != nil {
			bad("shifts[%d]: %v", i, err)
		}
	}
	names := map[string]bool{}
	for i, s := range c.Stations {
		where := fmt.Sprintf("stations[%d]", i)
		switch {
		case s.Name == "":
			bad("%s: name is required", where)
		case len(s.Name) > 64 || strings.ContainsAny(s.Name, "\r\n\t\x00"):
			bad("%s: name %q: at most 64 characters, no control characters", where, s.Name)
		case names[s.Name]:
			bad("%s: name %q used twice", where, s.Name)
		}
		names[s.Name] = true
		if s.CircuitID == "" && s.RemoteID == "" && s.LLDPPort == "" && len(s.MACs) == 0 && len(s.Serials) == 0 {
			bad("%s (%s): nothing places a device here: set circuit_id, remote_id, lldp_port, macs or serials", where, s.Name)
		}
		if s.LLDPChassis != "" && s.LLDPPort == "" {
			bad("%s (%s): lldp_chassis needs lldp_port", where, s.Name)
		}
		for _, m := range s.MACs {
			if hw, err := net.ParseMAC(strings.ReplaceAll(m, "-", ":")); err != nil || len(hw) != 6 {
				bad("%s (%s): macs %q: want aa:bb:cc:dd:ee:ff", where, s.Name, m)
			}
		}
		for _, g := range s.Serials {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				bad("%s (%s): serials %q: not a glob", where, s.Name, g)
			}
		}
	}
	return errs
}

// DefaultShifts are the shift start times (local time) when shifts is not set.
var DefaultShifts = []string{"06:00", "14:00", "22:00"}

// ShiftStarts returns the shift start times as offsets from midnight, sorted.
func (c *Config) ShiftStarts() []time.Duration {
	list := c.Shifts
	if len(list) == 0 {
		list = DefaultShifts
	}
	var out []time.Duration
	for _, s := range list {
		if d, err := parseClock(s); err == nil {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// parseClock parses "HH:MM" (24 h).
func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q: want HH:MM (24 h), such as 06:00", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}
