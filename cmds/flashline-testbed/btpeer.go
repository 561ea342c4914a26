package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/flashline/flashline/agent/kmod"
	"github.com/flashline/flashline/testbed/vhci"
)

func cmdBTPeer(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("bt-peer", flag.ContinueOnError)
	address := fs.String("address", "C0:FF:EE:00:00:01", "peer address the controller reports")
	name := fs.String("name", "flashline-peer", "peer name (EIR / scan response)")
	rssi := fs.Int("rssi", -45, "peer RSSI in dBm")
	le := fs.Bool("le", true, "report the peer in LE scans")
	bredr := fs.Bool("bredr", true, "report the peer in BR/EDR inquiry")
	ctrl := fs.String("controller", "00:AA:01:00:00:01", "the emulated controller's own address")
	ready := fs.String("ready", "", "file to create once the controller exists")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	peer, err := net.ParseMAC(*address)
	own, err2 := net.ParseMAC(*ctrl)
	if err := errors.Join(err, err2); err != nil || *rssi < -127 || *rssi > 20 {
		fmt.Fprintf(os.Stderr, "bt-peer: bad flags: %v\n", err)
		return 2
	}
	if err := kmod.Load(ctx, "hci_vhci", "cmac"); err != nil {
		slog.Warn("bt-peer: load hci_vhci and cmac (for LE crypto)", "err", err)
	}
	c, f, err := vhci.Open(ctx, vhci.Config{
		Address: own,
		Peers:   []vhci.Peer{{Address: peer, Name: *name, RSSI: int8(*rssi), LE: *le, BREDR: *bredr}},
		Logger:  slog.Default(),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "bt-peer: %v\n", err)
		return 1
	}
	defer f.Close()
	fmt.Printf("bt-peer: hci%d up, reporting %s %q at %d dBm\n", c.Index(), peer, *name, *rssi)
	markReady(*ready)
	if err := c.Serve(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "bt-peer: %v\n", err)
		return 1
	}
	// Give the kernel a moment to see the device go before the process ends.
	time.Sleep(10 * time.Millisecond)
	return 0
}
