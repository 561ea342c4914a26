package wifi

import (
	"github.com/vishvananda/netlink"
)

// KernelLinks sets links up and down through rtnetlink.
type KernelLinks struct{}

// SetUp implements Links.
func (KernelLinks) SetUp(index int, up bool) error {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		return err
	}
	if up {
		return netlink.LinkSetUp(l)
	}
	return netlink.LinkSetDown(l)
}
