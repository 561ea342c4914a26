package hwsimap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/wifi"
	"golang.org/x/sys/unix"
)

// Config describes the access point.
type Config struct {
	// SSID to beacon.
	SSID string
	// Interface is the Wi-Fi interface to use; empty means the first one.
	Interface string
	// Frequency in MHz (default 2412, channel 1).
	Frequency int
	// BeaconInterval in time units of 1024 µs (default 100).
	BeaconInterval uint16
	// NoAssociation makes the AP beacon and answer probes only.
	NoAssociation bool
	Logger        *slog.Logger
}

// Links brings interfaces up and down; vishvananda/netlink does it for real.
type Links interface {
	SetUp(index int, up bool) error
}

// AP is a running access point.
type AP struct {
	cfg    Config
	ctl    *genetlink.Conn // commands; owns the AP (socket owner)
	frames *genetlink.Conn // receives registered management frames
	family genetlink.Family
	ifi    *wifi.Interface
	log    *slog.Logger

	mu       sync.Mutex
	stations map[string]uint16 // MAC -> AID
	nextAID  uint16
}

// Start configures the interface as an AP and starts beaconing. ctl and
// frames are two generic netlink connections (tests pass genltest fakes);
// Close closes them.
func Start(ctx context.Context, ctl, frames *genetlink.Conn, links Links, cfg Config) (*AP, error) {
	if cfg.SSID == "" || len(cfg.SSID) > 32 {
		return nil, fmt.Errorf("hwsimap: SSID %q must be 1 to 32 bytes", cfg.SSID)
	}
	if cfg.Frequency == 0 {
		cfg.Frequency = 2412
	}
	if cfg.BeaconInterval == 0 {
		cfg.BeaconInterval = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ch, err := channel(cfg.Frequency)
	if err != nil {
		return nil, fmt.Errorf("hwsimap: %w", err)
	}
	family, err := ctl.GetFamily(unix.NL80211_GENL_NAME)
	if err != nil {
		return nil, fmt.Errorf("hwsimap: nl80211: %w", err)
	}
	a := &AP{cfg: cfg, ctl: ctl, frames: frames, family: family, log: cfg.Logger, stations: map[string]uint16{}, nextAID: 1}
	if a.ifi, err = a.findInterface(ctx); err != nil {
		return nil, err
	}
	if err := links.SetUp(a.ifi.Index, false); err != nil {
		return nil, fmt.Errorf("hwsimap: %s down: %w", a.ifi.Name, err)
	}
	if _, err := a.execute(ctl, unix.NL80211_CMD_SET_INTERFACE, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(a.ifi.Index))
		ae.Uint32(unix.NL80211_ATTR_IFTYPE, unix.NL80211_IFTYPE_AP)
	}); err != nil {
		return nil, fmt.Errorf("hwsimap: %s to AP mode: %w", a.ifi.Name, err)
	}
	if err := links.SetUp(a.ifi.Index, true); err != nil {
		return nil, fmt.Errorf("hwsimap: %s up: %w", a.ifi.Name, err)
	}
	if !cfg.NoAssociation {
		if err := a.registerFrames(); err != nil {
			return nil, err
		}
	} else if err := a.registerFrame(fcProbeReq); err != nil {
		return nil, err
	}
	head, tail := beacon(a.ifi.HardwareAddr, cfg.SSID, cfg.BeaconInterval, ch)
	if _, err := a.execute(ctl, unix.NL80211_CMD_START_AP, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(a.ifi.Index))
		ae.Bytes(unix.NL80211_ATTR_BEACON_HEAD, head)
		ae.Bytes(unix.NL80211_ATTR_BEACON_TAIL, tail)
		ae.Uint32(unix.NL80211_ATTR_BEACON_INTERVAL, uint32(cfg.BeaconInterval))
		ae.Uint32(unix.NL80211_ATTR_DTIM_PERIOD, 2)
		ae.Bytes(unix.NL80211_ATTR_SSID, []byte(cfg.SSID))
		ae.Uint32(unix.NL80211_ATTR_HIDDEN_SSID, unix.NL80211_HIDDEN_SSID_NOT_IN_USE)
		ae.Uint32(unix.NL80211_ATTR_AUTH_TYPE, unix.NL80211_AUTHTYPE_OPEN_SYSTEM)
		ae.Uint32(unix.NL80211_ATTR_WIPHY_FREQ, uint32(cfg.Frequency))
		ae.Uint32(unix.NL80211_ATTR_WIPHY_CHANNEL_TYPE, unix.NL80211_CHAN_NO_HT)
		// The AP stops when this socket closes, even if the process dies.
		ae.Flag(unix.NL80211_ATTR_SOCKET_OWNER, true)
	}); err != nil {
		return nil, fmt.Errorf("hwsimap: start AP %q on %s: %w", cfg.SSID, a.ifi.Name, err)
	}
	a.log.Info("hwsimap: AP started", "ssid", cfg.SSID, "interface", a.ifi.Name, "bssid", a.ifi.HardwareAddr.String(), "freq", cfg.Frequency)
	return a, nil
}

// Interface is the AP's interface.
func (a *AP) Interface() *wifi.Interface { return a.ifi }

// Close stops the AP by closing its sockets.
func (a *AP) Close() error {
	return errors.Join(a.frames.Close(), a.ctl.Close())
}

func (a *AP) execute(c *genetlink.Conn, cmd uint8, attrs func(*netlink.AttributeEncoder)) ([]genetlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	attrs(ae)
	data, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	flags := netlink.Request | netlink.Acknowledge
	if cmd == unix.NL80211_CMD_GET_INTERFACE {
		flags |= netlink.Dump
	}
	return c.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: a.family.Version},
		Data:   data,
	}, a.family.ID, flags)
}

// findInterface waits until the wanted Wi-Fi interface exists (after a
// netns move it appears a moment later).
func (a *AP) findInterface(ctx context.Context) (*wifi.Interface, error) {
	for {
		msgs, err := a.execute(a.ctl, unix.NL80211_CMD_GET_INTERFACE, func(*netlink.AttributeEncoder) {})
		if err != nil {
			return nil, fmt.Errorf("hwsimap: list Wi-Fi interfaces: %w", err)
		}
		ifis, err := wifi.ParseInterfaces(msgs)
		if err != nil {
			return nil, fmt.Errorf("hwsimap: list Wi-Fi interfaces: %w", err)
		}
		slices.SortFunc(ifis, func(x, y *wifi.Interface) int { return x.Index - y.Index })
		for _, ifi := range ifis {
			if ifi.Index != 0 && len(ifi.HardwareAddr) == 6 && (a.cfg.Interface == "" || ifi.Name == a.cfg.Interface) {
				return ifi, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("hwsimap: no Wi-Fi interface %q: %w", a.cfg.Interface, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (a *AP) registerFrame(subtype byte) error {
	_, err := a.execute(a.frames, unix.NL80211_CMD_REGISTER_FRAME, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(a.ifi.Index))
		ae.Uint16(unix.NL80211_ATTR_FRAME_TYPE, uint16(subtype))
		ae.Bytes(unix.NL80211_ATTR_FRAME_MATCH, nil)
	})
	if err != nil {
		return fmt.Errorf("hwsimap: register for frame type 0x%02x: %w", subtype, err)
	}
	return nil
}

func (a *AP) registerFrames() error {
	for _, st := range []byte{fcProbeReq, fcAuth, fcAssocReq, fcReassocReq, fcDisassoc, fcDeauth} {
		if err := a.registerFrame(st); err != nil {
			return err
		}
	}
	return nil
}

// Serve answers management frames until ctx ends.
func (a *AP) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = a.frames.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		msgs, _, err := a.frames.Receive()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("hwsimap: receive frames: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Command != unix.NL80211_CMD_FRAME {
				continue
			}
			attrs, err := netlink.UnmarshalAttributes(m.Data)
			if err != nil {
				continue
			}
			for _, at := range attrs {
				if at.Type == unix.NL80211_ATTR_FRAME {
					if err := a.handle(at.Data); err != nil {
						a.log.Warn("hwsimap: frame", "err", err)
					}
				}
			}
		}
	}
}

func (a *AP) handle(raw []byte) error {
	f, err := parseFrame(raw)
	if err != nil {
		return err
	}
	bssid := a.ifi.HardwareAddr
	ch, _ := channel(a.cfg.Frequency)
	switch f.Subtype {
	case fcProbeReq:
		ssid, ok := elements(f.Body)[ieSSID]
		if !ok || (len(ssid) > 0 && string(ssid) != a.cfg.SSID) {
			return nil
		}
		return a.send(probeResponse(bssid, f.SA, a.cfg.SSID, a.cfg.BeaconInterval, ch))
	case fcAuth:
		if len(f.Body) < 6 {
			return errShortFrame
		}
		alg := binary.LittleEndian.Uint16(f.Body)
		seq := binary.LittleEndian.Uint16(f.Body[2:])
		status := uint16(statusSuccess)
		switch {
		case alg != 0:
			status = statusUnsupportedAlg
		case seq != 1:
			status = statusAuthSeqOutOfSeq
		}
		a.log.Info("hwsimap: authentication", "station", f.SA.String(), "status", status)
		return a.send(authResponse(bssid, f.SA, alg, status))
	case fcAssocReq, fcReassocReq:
		reassoc := f.Subtype == fcReassocReq
		req, err := parseAssocRequest(f.Body, reassoc)
		if err != nil {
			return err
		}
		if string(req.SSID) != a.cfg.SSID {
			return a.send(assocResponse(reassoc, bssid, f.SA, 1, 0))
		}
		aid, err := a.addStation(f.SA, req)
		if err != nil {
			_ = a.send(assocResponse(reassoc, bssid, f.SA, 1, 0))
			return err
		}
		a.log.Info("hwsimap: associated", "station", f.SA.String(), "aid", aid)
		return a.send(assocResponse(reassoc, bssid, f.SA, statusSuccess, aid))
	case fcDisassoc, fcDeauth:
		return a.delStation(f.SA)
	}
	return nil
}

func (a *AP) send(frame []byte) error {
	_, err := a.execute(a.ctl, unix.NL80211_CMD_FRAME, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(a.ifi.Index))
		ae.Bytes(unix.NL80211_ATTR_FRAME, frame)
		ae.Flag(unix.NL80211_ATTR_DONT_WAIT_FOR_ACK, true)
	})
	if err != nil {
		return fmt.Errorf("send frame 0x%02x: %w", frame[0], err)
	}
	return nil
}

// staFlagUpdate is struct nl80211_sta_flag_update: mask, then set.
func staFlagUpdate(mask, set uint32) []byte {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint32(b, mask)
	binary.NativeEndian.PutUint32(b[4:], set)
	return b
}

// addStation adds an associated, authorized station: an open network has
// no key handshake, so data may flow at once.
func (a *AP) addStation(sta net.HardwareAddr, req assocRequest) (uint16, error) {
	a.mu.Lock()
	aid, known := a.stations[sta.String()]
	if !known {
		aid = a.nextAID
		a.nextAID++
		a.stations[sta.String()] = aid
	}
	a.mu.Unlock()
	if known {
		_ = a.delStation(sta)
		a.mu.Lock()
		a.stations[sta.String()] = aid
		a.mu.Unlock()
	}
	rates := make([]byte, 0, len(req.Rates))
	for _, r := range req.Rates {
		rates = append(rates, r&0x7f)
	}
	if len(rates) == 0 {
		return 0, fmt.Errorf("station %s offers no rates", sta)
	}
	authorized := uint32(1) << unix.NL80211_STA_FLAG_AUTHORIZED
	_, err := a.execute(a.ctl, unix.NL80211_CMD_NEW_STATION, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(a.ifi.Index))
		ae.Bytes(unix.NL80211_ATTR_MAC, sta)
		ae.Bytes(unix.NL80211_ATTR_STA_SUPPORTED_RATES, rates)
		ae.Uint16(unix.NL80211_ATTR_STA_AID, aid)
		ae.Uint16(unix.NL80211_ATTR_STA_LISTEN_INTERVAL, req.ListenInterval)
		ae.Uint16(unix.NL80211_ATTR_STA_CAPABILITY, req.Capability)
		ae.Bytes(unix.NL80211_ATTR_STA_FLAGS2, staFlagUpdate(authorized, authorized))
	})
	if err != nil {
		return 0, fmt.Errorf("add station %s: %w", sta, err)
	}
	return aid, nil
}

func (a *AP) delStation(sta net.HardwareAddr) error {
	a.mu.Lock()
	_, known := a.stations[sta.String()]
	delete(a.stations, sta.String())
	a.mu.Unlock()
	if !known {
		return nil
	}
	_, err := a.execute(a.ctl, unix.NL80211_CMD_DEL_STATION, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(a.ifi.Index))
		ae.Bytes(unix.NL80211_ATTR_MAC, sta)
	})
	if err != nil {
		return fmt.Errorf("remove station %s: %w", sta, err)
	}
	return nil
}
