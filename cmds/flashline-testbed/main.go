// Command flashline-testbed emulates line hardware inside a test VM: it is
// shipped only in test initramfs images and started in the background before
// the agent runs a scenario.
//
//	flashline-testbed wifi-ap --ssid LINE-TEST      # mac80211_hwsim AP (+DHCP, TCP sink)
//	flashline-testbed bt-peer --address C0:FF:EE:00:00:01   # vhci controller hearing a peer
//	flashline-testbed wifi-ap --hostapd /usr/sbin/hostapd --wpa2-ssid LINE-WPA2  # hostapd as the AP
//	flashline-testbed bt-bluez --name bluez-peer   # BlueZ's btvirt: the device's controller and a peer
//
// Booted with rdinit=/bin/flashline-testbed and
// flashline.testbed="wifi-ap --ssid LINE-TEST; bt-peer --address C0:FF:EE:00:00:01"
// on the kernel command line, it starts those emulators and then execs /init.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	// As the kernel's rdinit, with no arguments: start what the kernel
	// command line asks for, then become /init.
	if os.Getpid() == 1 && len(os.Args) < 2 {
		os.Exit(cmdInit(ctx, nil))
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var code int
	switch os.Args[1] {
	case "init":
		code = cmdInit(ctx, os.Args[2:])
	case "wifi-ap":
		code = cmdWifiAP(ctx, os.Args[2:])
	case wifiAPNetnsCmd:
		code = cmdWifiAPNetns(ctx, os.Args[2:])
	case "bt-peer":
		code = cmdBTPeer(ctx, os.Args[2:])
	case "bt-bluez":
		code = cmdBTBluez(ctx, os.Args[2:])
	default:
		usage()
		code = 2
	}
	os.Exit(code)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: flashline-testbed wifi-ap --ssid SSID [flags] | bt-peer --address ADDR [flags] | bt-bluez [flags]")
}
