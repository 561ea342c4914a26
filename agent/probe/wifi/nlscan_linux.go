package wifi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	mwifi "github.com/mdlayher/wifi"
	"golang.org/x/sys/unix"
)

// KernelClient is mdlayher/wifi's nl80211 client plus the two scan requests it lacks: a
// scan that probes for one SSID by name, and aborting a scan. mdlayher's Scan probes with
// the wildcard SSID only and cannot be stopped once the SSID has been heard.
type KernelClient struct {
	*mwifi.Client
}

// NewKernelClient opens nl80211.
func NewKernelClient() (*KernelClient, error) {
	c, err := mwifi.New()
	if err != nil {
		return nil, err
	}
	return &KernelClient{Client: c}, nil
}

// ScanSSID triggers an active scan probing for ssid by name and for any network (the
// wildcard SSID, so that the failure message can still list what was heard), then waits
// for the kernel's scan-done (or scan-aborted) event on nl80211's "scan" multicast group:
// no fixed sleeps, no polling for completion.
func (k *KernelClient) ScanSSID(ctx context.Context, ifi *mwifi.Interface, ssid string) error {
	conn, family, err := dialNL80211()
	if err != nil {
		return err
	}
	defer conn.Close()
	var group uint32
	for _, g := range family.Groups {
		if g.Name == unix.NL80211_MULTICAST_GROUP_SCAN {
			group = g.ID
		}
	}
	if group == 0 {
		return errors.New("nl80211 has no scan multicast group")
	}
	// Join before triggering: the done event of a short scan must not be missed.
	if err := conn.JoinGroup(group); err != nil {
		return fmt.Errorf("join nl80211 scan group: %w", err)
	}
	enc := netlink.NewAttributeEncoder()
	enc.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(ifi.Index))
	enc.Nested(unix.NL80211_ATTR_SCAN_SSIDS, func(ae *netlink.AttributeEncoder) error {
		ae.Bytes(1, []byte(ssid))
		ae.Bytes(2, []byte{})
		return nil
	})
	data, err := enc.Encode()
	if err != nil {
		return err
	}
	msg := genetlink.Message{Header: genetlink.Header{Command: unix.NL80211_CMD_TRIGGER_SCAN, Version: family.Version}, Data: data}
	if _, err := conn.Execute(msg, family.ID, netlink.Request|netlink.Acknowledge); err != nil {
		return fmt.Errorf("trigger scan on %s: %w", ifi.Name, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		msgs, _, err := conn.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("wait for the scan of %s: %w", ifi.Name, err)
		}
		for _, m := range msgs {
			if m.Header.Command != unix.NL80211_CMD_NEW_SCAN_RESULTS && m.Header.Command != unix.NL80211_CMD_SCAN_ABORTED {
				continue
			}
			if idx, ok := ifindex(m.Data); !ok || idx != ifi.Index {
				continue
			}
			if m.Header.Command == unix.NL80211_CMD_SCAN_ABORTED {
				return errScanAborted
			}
			return nil
		}
	}
}

var errScanAborted = errors.New("scan aborted")

// AbortScan stops the scan running on ifi, so that the radio is free at once for the next
// step (a connect would otherwise wait for the remaining channels).
func (k *KernelClient) AbortScan(ifi *mwifi.Interface) error {
	conn, family, err := dialNL80211()
	if err != nil {
		return err
	}
	defer conn.Close()
	enc := netlink.NewAttributeEncoder()
	enc.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(ifi.Index))
	data, err := enc.Encode()
	if err != nil {
		return err
	}
	msg := genetlink.Message{Header: genetlink.Header{Command: unix.NL80211_CMD_ABORT_SCAN, Version: family.Version}, Data: data}
	if _, err := conn.Execute(msg, family.ID, netlink.Request|netlink.Acknowledge); err != nil {
		return fmt.Errorf("abort scan on %s: %w", ifi.Name, err)
	}
	return nil
}

func dialNL80211() (*genetlink.Conn, genetlink.Family, error) {
	conn, err := genetlink.Dial(nil)
	if err != nil {
		return nil, genetlink.Family{}, fmt.Errorf("dial generic netlink: %w", err)
	}
	family, err := conn.GetFamily(unix.NL80211_GENL_NAME)
	if err != nil {
		conn.Close()
		return nil, genetlink.Family{}, fmt.Errorf("nl80211: %w", err)
	}
	return conn, family, nil
}

func ifindex(b []byte) (int, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, false
	}
	for ad.Next() {
		if ad.Type() == unix.NL80211_ATTR_IFINDEX {
			return int(ad.Uint32()), true
		}
	}
	return 0, false
}
