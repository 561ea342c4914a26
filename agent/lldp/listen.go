package lldp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/mdlayher/packet"

	"github.com/flashline/flashline/protocol"
)

// Listen waits on the interface for the first valid LLDP frame and returns its neighbour, or
// ctx's error when none arrived. Switches send LLDP every 30 s by default (line switches are
// usually set to a few seconds), so callers run it beside other work rather than wait for it.
// It needs CAP_NET_RAW (the agent runs as root in the initramfs).
func Listen(ctx context.Context, ifname string) (protocol.LLDPNeighbor, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return protocol.LLDPNeighbor{}, fmt.Errorf("lldp: %w", err)
	}
	c, err := packet.Listen(ifi, packet.Raw, EtherType, nil)
	if err != nil {
		return protocol.LLDPNeighbor{}, fmt.Errorf("lldp on %s: %w", ifname, err)
	}
	defer c.Close()
	// 01:80:c2:00:00:0e is a link-local multicast address the NIC may filter: promiscuous
	// mode for the time of the wait lets it through.
	_ = c.SetPromiscuous(true)
	defer c.SetPromiscuous(false)
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 9000)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				return protocol.LLDPNeighbor{}, ctx.Err()
			}
			return protocol.LLDPNeighbor{}, fmt.Errorf("lldp on %s: %w", ifname, err)
		}
		if nb, err := ParseFrame(buf[:n]); err == nil {
			return nb, nil
		}
	}
}
