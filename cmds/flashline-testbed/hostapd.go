package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/flashline/flashline/agent/kmod"
	"github.com/flashline/flashline/testbed/hwsimap"
)

// run serves the line with the Go AP, or with hostapd when --hostapd names it.
func (f *apFlags) run(ctx context.Context) int {
	if *f.hostapd == "" {
		if *f.wpaSSID != "" {
			fmt.Fprintln(os.Stderr, "wifi-ap: --wpa2-ssid needs --hostapd (the Go AP is open only)")
			return 2
		}
		return runLine(ctx, f.config(), *f.ready)
	}
	if *f.noAssoc {
		fmt.Fprintln(os.Stderr, "wifi-ap: --beacon-only is the Go AP's fault; hostapd always associates")
		return 2
	}
	if *f.freq < 2412 || *f.freq > 2472 || (*f.freq-2407)%5 != 0 {
		fmt.Fprintf(os.Stderr, "wifi-ap: --freq %d: hostapd runs here on 2.4 GHz channels 1-13\n", *f.freq)
		return 2
	}
	// mac80211 asks the crypto API for ccm(aes) when hostapd installs a CCMP key; with no
	// modprobe in the initramfs the kernel cannot load it on demand.
	if *f.wpaSSID != "" {
		if err := kmod.Load(ctx, "ccm", "ctr"); err != nil {
			slog.Warn("wifi-ap: load CCMP crypto", "err", err)
		}
	}
	cfg := hwsimap.HostapdConfig{
		Hostapd: *f.hostapd, Interface: *f.iface, Channel: (*f.freq - 2407) / 5,
		BSSes:   []hwsimap.BSS{{SSID: *f.ssid}},
		Address: *f.addr, SinkPort: *f.sink, Dir: readyDir, Logger: slog.Default(),
	}
	if *f.wpaSSID != "" {
		cfg.BSSes = append(cfg.BSSes, hwsimap.BSS{SSID: *f.wpaSSID, Passphrase: *f.psk})
	}
	_ = os.MkdirAll(readyDir, 0o755)
	err := hwsimap.RunHostapd(ctx, cfg, func() {
		fmt.Printf("wifi-ap: hostapd serves %q (open)", *f.ssid)
		if *f.wpaSSID != "" {
			fmt.Printf(" and %q (WPA2-PSK)", *f.wpaSSID)
		}
		fmt.Printf(" on %s, %d MHz, line %s, sink port %d\n", *f.iface, *f.freq, *f.addr, *f.sink)
		markReady(*f.ready)
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "wifi-ap: %v\n", err)
		return 1
	}
	return 0
}
