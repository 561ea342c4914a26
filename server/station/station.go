// Package station tells which station (bench, slot, fixture) of the line a device sits in,
// from what the line's network says about it: the DHCP relay agent information (option 82,
// RFC 3046) the line switch adds to the device's DHCP, the LLDP the agent heard on its boot
// NIC, or a static MAC/serial map in the configuration, in that order.
package station

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
)

// Sources of a station, as stored with a run.
const (
	SourceRelay  = "dhcp-relay" // DHCP option 82
	SourceLLDP   = "lldp"
	SourceConfig = "config" // stations[].macs / serials
)

// Relay is the relay agent information of a DHCP request, its IDs rendered as ID renders
// them.
type Relay struct {
	CircuitID string `json:"circuit_id,omitempty"`
	RemoteID  string `json:"remote_id,omitempty"`
}

// Relay agent information sub-options (RFC 3046 section 2.0).
const (
	subCircuitID = 1
	subRemoteID  = 2
)

// ParseRelayInfo parses the value of DHCP option 82: sub-options as code, length, value.
func ParseRelayInfo(b []byte) (Relay, error) {
	var r Relay
	for len(b) > 0 {
		if len(b) < 2 {
			return Relay{}, errors.New("relay agent information: truncated sub-option")
		}
		code, l := b[0], int(b[1])
		if l > len(b)-2 {
			return Relay{}, fmt.Errorf("relay agent information: sub-option %d says %d bytes, %d left", code, l, len(b)-2)
		}
		v := b[2 : 2+l]
		b = b[2+l:]
		switch code {
		case subCircuitID:
			r.CircuitID = ID(v)
		case subRemoteID:
			r.RemoteID = ID(v)
		}
	}
	if r.CircuitID == "" && r.RemoteID == "" {
		return Relay{}, errors.New("relay agent information: neither circuit ID nor remote ID")
	}
	return r, nil
}

// ID renders a switch's identifier as the configuration names it: printable text as it is
// (switches that send "Gi1/0/5" or "line1-sw:eth5"), anything else (Cisco's default
// VLAN/module/port bytes, a MAC as remote ID) in lower-case hex.
func ID(v []byte) string {
	s := string(v)
	if !utf8.ValidString(s) {
		return hex.EncodeToString(v)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return hex.EncodeToString(v)
		}
	}
	return s
}

// Match is a device's station and what told it.
type Match struct {
	Name string `json:"station,omitempty"`
	// Source is SourceRelay, SourceLLDP or SourceConfig; empty when nothing placed the device.
	Source string `json:"station_source,omitempty"`
	// Port is what the network said (circuit ID, LLDP port), also when no station is mapped
	// to it: that is what the operator adds to the configuration.
	Port string `json:"station_port,omitempty"`
}

// Map resolves stations from the configuration. The zero Map places nothing.
type Map struct {
	stations []config.Station
}

// NewMap returns the map of the configured stations (validated by config).
func NewMap(st []config.Station) *Map { return &Map{stations: st} }

func eq(a, b string) bool {
	return a != "" && strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// Resolve places a device: relay information first (the switch port the DHCP came in on),
// then the LLDP neighbour, then the static MAC and serial lists.
func (m *Map) Resolve(relay *Relay, lldp *protocol.LLDPNeighbor, mac, serial string) Match {
	var seen Match
	if relay != nil {
		seen = Match{Port: describeRelay(*relay)}
		for _, s := range m.stations {
			if s.CircuitID == "" && s.RemoteID == "" {
				continue
			}
			if (s.CircuitID == "" || eq(s.CircuitID, relay.CircuitID)) && (s.RemoteID == "" || eq(s.RemoteID, relay.RemoteID)) {
				return Match{Name: s.Name, Source: SourceRelay, Port: seen.Port}
			}
		}
	}
	if lldp != nil && lldp.PortID != "" {
		if seen.Port == "" {
			seen = Match{Port: describeLLDP(*lldp)}
		}
		for _, s := range m.stations {
			if s.LLDPPort == "" {
				continue
			}
			if (eq(s.LLDPPort, lldp.PortID) || eq(s.LLDPPort, lldp.PortDescription)) &&
				(s.LLDPChassis == "" || eq(s.LLDPChassis, lldp.ChassisID) || eq(s.LLDPChassis, lldp.SystemName)) {
				return Match{Name: s.Name, Source: SourceLLDP, Port: describeLLDP(*lldp)}
			}
		}
	}
	hw, _ := net.ParseMAC(mac)
	for _, s := range m.stations {
		for _, x := range s.MACs {
			if h, err := net.ParseMAC(strings.ReplaceAll(x, "-", ":")); err == nil && hw != nil && h.String() == hw.String() {
				return Match{Name: s.Name, Source: SourceConfig, Port: seen.Port}
			}
		}
		for _, g := range s.Serials {
			if ok, _ := path.Match(g, serial); ok && serial != "" {
				return Match{Name: s.Name, Source: SourceConfig, Port: seen.Port}
			}
		}
	}
	return seen
}

func describeRelay(r Relay) string {
	switch {
	case r.RemoteID == "":
		return "circuit " + r.CircuitID
	case r.CircuitID == "":
		return "remote " + r.RemoteID
	}
	return "circuit " + r.CircuitID + " remote " + r.RemoteID
}

func describeLLDP(n protocol.LLDPNeighbor) string {
	if n.SystemName != "" {
		return "lldp " + n.SystemName + " " + n.PortID
	}
	return "lldp " + n.PortID
}

// Seen remembers the relay information of each MAC's latest DHCP request, for the hello and
// the pxelinux.cfg that follow it. It keeps at most max MACs (the oldest go first) for at most
// ttl, so a flood of invented MACs cannot grow it. Safe for concurrent use.
type Seen struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]seenRelay
}

type seenRelay struct {
	r  Relay
	at time.Time
}

// NewSeen returns a Seen of at most max MACs (default 4096) kept for ttl (default 2h).
func NewSeen(max int, ttl time.Duration) *Seen {
	if max <= 0 {
		max = 4096
	}
	if ttl <= 0 {
		ttl = 2 * time.Hour
	}
	return &Seen{max: max, ttl: ttl, now: time.Now, m: map[string]seenRelay{}}
}

// Record notes mac's relay information.
func (s *Seen) Record(mac net.HardwareAddr, r Relay) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := mac.String()
	if _, ok := s.m[k]; !ok && len(s.m) >= s.max {
		var oldest string
		var at time.Time
		for mk, v := range s.m {
			if oldest == "" || v.at.Before(at) {
				oldest, at = mk, v.at
			}
		}
		delete(s.m, oldest)
	}
	s.m[k] = seenRelay{r: r, at: now}
}

// Lookup returns mac's latest relay information, when it is recent enough.
func (s *Seen) Lookup(mac net.HardwareAddr) (Relay, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[mac.String()]
	if !ok || s.now().Sub(v.at) > s.ttl {
		return Relay{}, false
	}
	return v.r, true
}

// Resolver places devices with what the DHCP server saw and the configuration.
type Resolver struct {
	Map  *Map
	Seen *Seen // nil without a DHCP server
}

// Station places the device with this MAC and serial that heard lldp (nil when not).
func (r *Resolver) Station(mac, serial string, lldp *protocol.LLDPNeighbor) Match {
	var relay *Relay
	if r.Seen != nil {
		if hw, err := net.ParseMAC(mac); err == nil {
			if rl, ok := r.Seen.Lookup(hw); ok {
				relay = &rl
			}
		}
	}
	m := r.Map
	if m == nil {
		m = &Map{}
	}
	return m.Resolve(relay, lldp, mac, serial)
}

// ForMAC is the station known before the agent runs (relay information and the MAC map), for
// the pxelinux.cfg comment; "" when none.
func (r *Resolver) ForMAC(mac net.HardwareAddr) string {
	return r.Station(mac.String(), "", nil).Name
}
