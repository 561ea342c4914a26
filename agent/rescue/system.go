package rescue

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kmsg reads the kernel's log buffer.
func Kmsg() (string, error) {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil {
		return "", fmt.Errorf("kernel log size: %w", err)
	}
	buf := make([]byte, n)
	m, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return "", fmt.Errorf("read kernel log: %w", err)
	}
	return string(buf[:m]), nil
}

// Links lists the network interfaces with state, MAC and IPv4/IPv6 addresses.
func Links() (string, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("list links: %w", err)
	}
	var b strings.Builder
	for _, l := range ls {
		a := l.Attrs()
		fmt.Fprintf(&b, "%d: %s %s %s mtu %d\n", a.Index, a.Name, a.OperState, a.HardwareAddr, a.MTU)
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
		for _, ad := range addrs {
			fmt.Fprintf(&b, "    %s\n", ad.IPNet)
		}
	}
	return b.String(), nil
}
