package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/flashline/flashline/agent/kmod"
	"github.com/flashline/flashline/testbed/hwsimap"
	"github.com/mdlayher/genetlink"
	mwifi "github.com/mdlayher/wifi"
)

const wifiAPNetnsCmd = "wifi-ap-netns"

type apFlags struct {
	fs      *flag.FlagSet
	ssid    *string
	freq    *int
	iface   *string
	netns   *bool
	addr    *string
	sink    *int
	noAssoc *bool
	ready   *string
	signal  *int
	hostapd *string
	wpaSSID *string
	psk     *string
}

func newAPFlags(name string) *apFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &apFlags{
		fs:      fs,
		ssid:    fs.String("ssid", "LINE-TEST", "SSID to beacon"),
		freq:    fs.Int("freq", 2412, "channel frequency in MHz"),
		iface:   fs.String("interface", "", "Wi-Fi interface for the AP (default: the last hwsim radio's)"),
		netns:   fs.Bool("netns", true, "run the AP in its own network namespace (needed for traffic to cross the emulated air)"),
		addr:    fs.String("addr", "192.168.77.1/24", "the AP's address; DHCP hands out .100-.199 of its subnet"),
		sink:    fs.Int("sink-port", 5201, "TCP sink port on the AP's address (0: none)"),
		noAssoc: fs.Bool("beacon-only", false, "beacon and answer probes, refuse association"),
		ready:   fs.String("ready", "", "file to create once the AP beacons"),
		signal:  fs.Int("signal", 0, "relay all hwsim frames through a medium that sets this signal in dBm (0: hwsim's own, about -30)"),
		hostapd: fs.String("hostapd", "", "run this hostapd binary as the AP instead of the Go AP (test initrds built with -host-binary /usr/sbin/hostapd)"),
		wpaSSID: fs.String("wpa2-ssid", "", "with --hostapd: also serve this WPA2-PSK network on the same radio"),
		psk:     fs.String("psk", "line-test-psk", "the --wpa2-ssid network's passphrase"),
	}
}

func (f *apFlags) config() hwsimap.LineConfig {
	return hwsimap.LineConfig{
		AP:       hwsimap.Config{SSID: *f.ssid, Frequency: *f.freq, Interface: *f.iface, NoAssociation: *f.noAssoc, Logger: slog.Default()},
		Address:  *f.addr,
		SinkPort: *f.sink,
		Logger:   slog.Default(),
	}
}

func cmdWifiAP(ctx context.Context, args []string) int {
	f := newAPFlags("wifi-ap")
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	if err := kmod.Load(ctx, "mac80211_hwsim"); err != nil {
		slog.Warn("wifi-ap: load mac80211_hwsim", "err", err)
	}
	ifi, all, err := pickRadio(ctx, *f.iface)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wifi-ap: %v\n", err)
		return 1
	}
	*f.iface = ifi.Name
	if *f.signal != 0 {
		if err := startMedium(ctx, *f.signal, all); err != nil {
			fmt.Fprintf(os.Stderr, "wifi-ap: %v\n", err)
			return 1
		}
	}
	if !*f.netns {
		return f.run(ctx)
	}
	// Re-run ourselves in a new network namespace and move the radio there.
	child := exec.CommandContext(ctx, os.Args[0], append([]string{wifiAPNetnsCmd}, args...)...)
	child.Args = append(child.Args, "--interface", ifi.Name)
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGTERM}
	child.Cancel = func() error { return child.Process.Signal(syscall.SIGTERM) }
	if err := child.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "wifi-ap: start AP namespace: %v\n", err)
		return 1
	}
	if err := hwsimap.MoveWiphy(ctx, ifi.PHY, child.Process.Pid); err != nil {
		fmt.Fprintf(os.Stderr, "wifi-ap: %v\n", err)
		_ = child.Process.Kill()
		_ = child.Wait()
		return 1
	}
	if err := child.Wait(); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "wifi-ap: %v\n", err)
		return 1
	}
	return 0
}

func cmdWifiAPNetns(ctx context.Context, args []string) int {
	f := newAPFlags(wifiAPNetnsCmd)
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	return f.run(ctx)
}

func runLine(ctx context.Context, cfg hwsimap.LineConfig, ready string) int {
	err := hwsimap.RunLine(ctx, cfg, func(l *hwsimap.Line) {
		fmt.Printf("wifi-ap: beaconing %q on %s (BSSID %s, %d MHz), line %s, sink port %d\n",
			cfg.AP.SSID, l.AP.Interface().Name, l.AP.Interface().HardwareAddr, cfg.AP.Frequency, cfg.Address, cfg.SinkPort)
		markReady(ready)
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "wifi-ap: %v\n", err)
		return 1
	}
	return 0
}

// pickRadio waits for the hwsim radios and returns the interface of the last
// one (or the named one), leaving the first for the device under test.
func pickRadio(ctx context.Context, name string) (*mwifi.Interface, []*mwifi.Interface, error) {
	c, err := mwifi.New()
	if err != nil {
		return nil, nil, fmt.Errorf("nl80211: %w", err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ifis, err := c.Interfaces()
		if err != nil {
			return nil, nil, fmt.Errorf("list Wi-Fi interfaces: %w", err)
		}
		var pick *mwifi.Interface
		var all []*mwifi.Interface
		n := 0
		for _, ifi := range ifis {
			if ifi.Index == 0 {
				continue
			}
			all = append(all, ifi)
			n++
			if (name == "" && (pick == nil || ifi.PHY > pick.PHY)) || ifi.Name == name {
				pick = ifi
			}
		}
		if pick != nil && (name != "" || n >= 2) {
			return pick, all, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("no spare Wi-Fi radio (%d interfaces; load mac80211_hwsim with radios=2 or more)", n)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startMedium relays every hwsim frame in the background with the given
// signal, so that scans measure it.
func startMedium(ctx context.Context, signal int, radios []*mwifi.Interface) error {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return fmt.Errorf("hwsim medium: %w", err)
	}
	var addrs []net.HardwareAddr
	for _, r := range radios {
		addrs = append(addrs, hwsimap.MediumAddr(r.HardwareAddr))
	}
	m, err := hwsimap.NewMedium(c, hwsimap.MediumConfig{SignalDBm: signal, Radios: addrs, Logger: slog.Default()})
	if err != nil {
		c.Close()
		return err
	}
	fmt.Printf("wifi-ap: medium relays all hwsim frames at %d dBm\n", signal)
	go func() {
		defer c.Close()
		if err := m.Serve(ctx); err != nil && ctx.Err() == nil {
			slog.Error("wifi-ap: medium stopped", "err", err)
		}
	}()
	return nil
}
