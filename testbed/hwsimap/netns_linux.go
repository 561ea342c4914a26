package hwsimap

import (
	"context"
	"fmt"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Dial opens the two nl80211 connections an AP needs.
func Dial() (ctl, frames *genetlink.Conn, err error) {
	if ctl, err = genetlink.Dial(nil); err != nil {
		return nil, nil, fmt.Errorf("hwsimap: generic netlink: %w", err)
	}
	if frames, err = genetlink.Dial(nil); err != nil {
		ctl.Close()
		return nil, nil, fmt.Errorf("hwsimap: generic netlink: %w", err)
	}
	return ctl, frames, nil
}

// KernelLinks sets links up and down through rtnetlink.
type KernelLinks struct{}

// SetUp implements Links.
func (KernelLinks) SetUp(index int, up bool) error {
	l, err := vnl.LinkByIndex(index)
	if err != nil {
		return err
	}
	if up {
		return vnl.LinkSetUp(l)
	}
	return vnl.LinkSetDown(l)
}

// MoveWiphy moves wireless PHY phy (with its interfaces) into the network
// namespace of process pid, so that the AP's addresses and routes do not
// mix with the device under test's: otherwise traffic between the station
// and the AP would never cross the (emulated) air.
func MoveWiphy(ctx context.Context, phy int, pid int) error {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return fmt.Errorf("move phy%d: %w", phy, err)
	}
	defer c.Close()
	family, err := c.GetFamily(unix.NL80211_GENL_NAME)
	if err != nil {
		return fmt.Errorf("move phy%d: %w", phy, err)
	}
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.NL80211_ATTR_WIPHY, uint32(phy))
	ae.Uint32(unix.NL80211_ATTR_PID, uint32(pid))
	data, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = c.Execute(genetlink.Message{
		Header: genetlink.Header{Command: unix.NL80211_CMD_SET_WIPHY_NETNS, Version: family.Version},
		Data:   data,
	}, family.ID, netlink.Request|netlink.Acknowledge)
	if err != nil {
		return fmt.Errorf("move phy%d to the namespace of pid %d: %w", phy, pid, err)
	}
	return nil
}
