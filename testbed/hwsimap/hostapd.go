package hwsimap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flashline/flashline/protocol/sink"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	vnl "github.com/vishvananda/netlink"
)

// The hostapd line: the same line network as RunLine (address, DHCP, TCP sink), but the
// access point is Debian's hostapd on the radio instead of the Go AP, so the probes meet a
// real AP implementation (its beacons, probe responses, RSN element, association handling).
// The Go AP stays for what hostapd cannot do here: the medium relay's signal level and the
// beacon-only fault (association refused).

// BSS is one network hostapd serves on the radio.
type BSS struct {
	SSID string
	// Passphrase makes the BSS WPA2-PSK (CCMP); empty is an open network.
	Passphrase string
}

// HostapdConfig describes a hostapd line.
type HostapdConfig struct {
	// Hostapd is the hostapd binary.
	Hostapd string
	// Interface is the radio's interface; the first BSS uses it, further BSSes get
	// interfaces of their own (Interface-1 ...).
	Interface string
	Channel   int // 2.4 GHz channel, 1 when 0
	BSSes     []BSS
	// Address, SinkPort: as in LineConfig; DHCP and the sink serve the first BSS.
	Address  string
	SinkPort int
	// Dir holds the generated configuration.
	Dir    string
	Logger *slog.Logger
}

// HostapdConf renders hostapd.conf for cfg.
func HostapdConf(cfg HostapdConfig) (string, error) {
	if cfg.Interface == "" || len(cfg.BSSes) == 0 {
		return "", errors.New("hostapd: want an interface and at least one BSS")
	}
	ch := cfg.Channel
	if ch == 0 {
		ch = 1
	}
	if ch < 1 || ch > 13 {
		return "", fmt.Errorf("hostapd: channel %d: want 1-13 (2.4 GHz)", ch)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "interface=%s\ndriver=nl80211\nhw_mode=g\nchannel=%d\nbeacon_int=100\n", cfg.Interface, ch)
	// Station events (authenticated, associated, WPA handshake) on stdout, for the test logs.
	b.WriteString("logger_stdout=-1\nlogger_stdout_level=1\n")
	for i, bss := range cfg.BSSes {
		if bss.SSID == "" || len(bss.SSID) > 32 || strings.ContainsAny(bss.SSID, "\n\r") {
			return "", fmt.Errorf("hostapd: SSID %q: want 1-32 bytes on one line", bss.SSID)
		}
		if i > 0 {
			// hostapd derives the extra BSSIDs from the radio's address.
			fmt.Fprintf(&b, "\nbss=%s\n", bssInterface(cfg.Interface, i))
		}
		fmt.Fprintf(&b, "ssid=%s\n", bss.SSID)
		if bss.Passphrase != "" {
			if len(bss.Passphrase) < 8 || len(bss.Passphrase) > 63 || strings.ContainsAny(bss.Passphrase, "\n\r") {
				return "", errors.New("hostapd: a WPA2 passphrase has 8-63 characters on one line")
			}
			fmt.Fprintf(&b, "wpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase=%s\n", bss.Passphrase)
		}
	}
	return b.String(), nil
}

// bssInterface names the interface of the i-th extra BSS within IFNAMSIZ.
func bssInterface(base string, i int) string {
	suffix := "-" + strconv.Itoa(i)
	if len(base)+len(suffix) > 15 {
		base = base[:15-len(suffix)]
	}
	return base + suffix
}

// RunHostapd starts hostapd on the radio, waits until every BSS is enabled, brings up the
// line's address, DHCP and sink on the first BSS, calls ready and serves until ctx ends.
func RunHostapd(ctx context.Context, cfg HostapdConfig, ready func()) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ip, subnet, err := net.ParseCIDR(cfg.Address)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("line address %q: want an IPv4 CIDR", cfg.Address)
	}
	conf, err := HostapdConf(cfg)
	if err != nil {
		return err
	}
	dir := cfg.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	confPath := filepath.Join(dir, "hostapd-"+cfg.Interface+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("hostapd: write configuration: %w", err)
	}
	if lo, err := vnl.LinkByName("lo"); err == nil {
		_ = vnl.LinkSetUp(lo)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, cfg.Hostapd, confPath)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start hostapd: %w", err)
	}
	exited := make(chan error, 1)
	enabled := make(chan string, len(cfg.BSSes))
	go func() {
		watchHostapd(out, log, enabled)
		exited <- cmd.Wait()
	}()
	// hostapd reports AP-ENABLED once per radio, for its first interface, after every BSS
	// is set up.
	timeout := time.After(60 * time.Second)
	for up := false; !up; {
		select {
		case ifname := <-enabled:
			log.Info("hostapd: AP enabled", "interface", ifname)
			up = ifname == cfg.Interface
		case err := <-exited:
			return fmt.Errorf("hostapd exited before the AP was enabled: %v", err)
		case <-timeout:
			return errors.New("hostapd: no AP-ENABLED within 60 s")
		case <-ctx.Done():
			<-exited
			return ctx.Err()
		}
	}
	link, err := vnl.LinkByName(cfg.Interface)
	if err != nil {
		return fmt.Errorf("line: %s: %w", cfg.Interface, err)
	}
	if err := vnl.AddrReplace(link, &vnl.Addr{IPNet: &net.IPNet{IP: ip, Mask: subnet.Mask}}); err != nil {
		return fmt.Errorf("line: address %s on %s: %w", cfg.Address, cfg.Interface, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("line %s: %w", name, err)
				cancel()
			}
		}()
	}
	leases := &leases{server: ip.To4(), mask: subnet.Mask, byMAC: map[string]net.IP{}}
	srv, err := server4.NewServer(cfg.Interface, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, leases.handle(log))
	if err != nil {
		return fmt.Errorf("line: DHCP server on %s: %w", cfg.Interface, err)
	}
	context.AfterFunc(ctx, func() { srv.Close() })
	run("DHCP", srv.Serve)
	if cfg.SinkPort != 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(cfg.SinkPort)))
		if err != nil {
			return fmt.Errorf("line: sink: %w", err)
		}
		run("sink", func() error { return sink.Serve(ctx, ln, 2*time.Minute, log) })
	}
	if ready != nil {
		ready()
	}
	var hostapdErr error
	select {
	case <-ctx.Done():
		hostapdErr = <-exited
		if ctx.Err() != nil {
			hostapdErr = nil
		}
	case err := <-exited:
		hostapdErr = fmt.Errorf("hostapd exited: %v", err)
		cancel()
	}
	wg.Wait()
	close(errs)
	all := []error{hostapdErr}
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// watchHostapd logs hostapd's output and reports each "<ifname>: AP-ENABLED" line.
func watchHostapd(r io.Reader, log *slog.Logger, enabled chan<- string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		log.Info("hostapd", "out", line)
		if ifname, ok := apEnabled(line); ok {
			select {
			case enabled <- ifname:
			default:
			}
		}
	}
}

// apEnabled parses hostapd's "wlan1: AP-ENABLED" event line.
func apEnabled(line string) (string, bool) {
	ifname, ev, ok := strings.Cut(strings.TrimSpace(line), ": ")
	if !ok || strings.TrimSpace(ev) != "AP-ENABLED" || ifname == "" || strings.ContainsAny(ifname, " \t") {
		return "", false
	}
	return ifname, true
}
