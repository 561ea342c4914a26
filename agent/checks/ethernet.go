package checks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/mdlayher/ethtool"
	"github.com/vishvananda/netlink"
)

// Link is the state of one wired network interface.
type Link struct {
	Name      string
	MAC       string
	Carrier   bool
	SpeedMbps int    // 0 when unknown (no carrier, or a virtual NIC that reports none)
	Duplex    string // full, half or ""
}

// LinkReader lists the wired network interfaces with their link state.
type LinkReader interface {
	Links(ctx context.Context) ([]Link, error)
}

// EthernetLinkParams configure ethernet.link.
type EthernetLinkParams struct {
	Interface    string `yaml:"interface" json:"interface,omitempty" jsonschema_description:"Glob on the interface name (eth0, enp*); empty: any wired NIC"`
	MAC          string `yaml:"mac" json:"mac,omitempty" jsonschema:"pattern=^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$" jsonschema_description:"Only the NIC with this MAC address"`
	MinSpeedMbps int    `yaml:"min_speed_mbps" json:"min_speed_mbps,omitempty" jsonschema:"minimum=0" jsonschema_description:"Least negotiated speed in Mbit/s (10, 100, 1000, 2500, 10000...)"`
	Duplex       string `yaml:"duplex" json:"duplex,omitempty" jsonschema:"enum=full,enum=half"`
	Count        int    `yaml:"count" json:"count,omitempty" jsonschema:"minimum=1,default=1" jsonschema_description:"How many NICs must have a good link"`
}

// EthernetLink is ethernet.link: a wired NIC has carrier at a least speed.
func EthernetLink(links LinkReader) Kind {
	return Define("ethernet.link", "A wired NIC has link (carrier), at least min_speed_mbps.",
		func() EthernetLinkParams { return EthernetLinkParams{Count: 1} },
		func(p EthernetLinkParams) []FieldError {
			var errs []FieldError
			if p.MAC != "" && !ValidMAC(p.MAC) {
				errs = append(errs, FieldError{"mac", fmt.Sprintf("%q is not a MAC address (aa:bb:cc:dd:ee:ff)", p.MAC)})
			}
			if p.MinSpeedMbps < 0 || p.MinSpeedMbps > 800000 {
				errs = append(errs, FieldError{"min_speed_mbps", "must be in [0, 800000] Mbit/s"})
			}
			if p.Duplex != "" && p.Duplex != "full" && p.Duplex != "half" {
				errs = append(errs, FieldError{"duplex", "must be full or half"})
			}
			if p.Count < 1 {
				errs = append(errs, FieldError{"count", "must be at least 1"})
			}
			return errs
		},
		func(p EthernetLinkParams) Check {
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				ls, err := links.Links(ctx)
				if err != nil {
					return Outcome{}, fmt.Errorf("read links: %w", err)
				}
				var good []Link
				var seen []string
				var best *Link
				for i, l := range ls {
					if !MatchGlob(p.Interface, l.Name) || (p.MAC != "" && !strings.EqualFold(p.MAC, l.MAC)) {
						continue
					}
					state := "no carrier"
					if l.Carrier {
						state = fmt.Sprintf("%d Mb/s %s", l.SpeedMbps, orDash(l.Duplex))
					}
					seen = append(seen, l.Name+" "+state)
					if best == nil || (l.Carrier && (!best.Carrier || l.SpeedMbps > best.SpeedMbps)) {
						best = &ls[i]
					}
					if l.Carrier && l.SpeedMbps >= p.MinSpeedMbps && (p.Duplex == "" || p.Duplex == l.Duplex) {
						good = append(good, l)
					}
				}
				var ms []protocol.Measurement
				if best != nil {
					up := 0.0
					if best.Carrier {
						up = 1
					}
					ms = append(ms, Text("interface", best.Name), Num("carrier", up, ""), Num("link_mbps", float64(best.SpeedMbps), "Mbit/s"))
					if best.Duplex != "" {
						ms = append(ms, Text("duplex", best.Duplex))
					}
				}
				if len(seen) == 0 {
					return Failf(ms, "no wired NIC matches (interface %q mac %q)", p.Interface, p.MAC), nil
				}
				if len(good) < p.Count {
					want := "link up"
					if p.MinSpeedMbps > 0 {
						want += fmt.Sprintf(" >= %d Mb/s", p.MinSpeedMbps)
					}
					if p.Duplex != "" {
						want += " " + p.Duplex + " duplex"
					}
					return Failf(ms, "want %d NIC(s) with %s; %s", p.Count, want, strings.Join(seen, "; ")), nil
				}
				return Passf(ms, "%s up %d Mb/s %s", good[0].Name, good[0].SpeedMbps, orDash(good[0].Duplex)), nil
			})
		})
}

// ValidMAC reports whether s is a colon-separated 48-bit MAC address.
func ValidMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i, c := range s {
		if i%3 == 2 {
			if c != ':' {
				return false
			}
			continue
		}
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// SystemLinks reads links from sysfs, and speed and duplex through ethtool's netlink
// interface when the kernel has it (falling back to sysfs' speed and duplex files).
//
// On the live system it first brings administratively down NICs up: a down NIC reports no
// carrier whatever its cable, and in the initramfs only the boot NIC has been brought up.
// It then gives autonegotiation up to LinkWait for the carrier to appear.
type SystemLinks struct {
	Sys string // "/sys"
	// LinkWait bounds the wait for carrier after bringing a NIC up; 4s when zero.
	LinkWait time.Duration
}

// iffUp is IFF_UP in a NIC's sysfs flags.
const iffUp = 0x1

// bringUp sets the named NICs up and waits, within ctx and LinkWait, until each has carrier.
func (s SystemLinks) bringUp(ctx context.Context, root string, names []string) {
	var raised []string
	for _, n := range names {
		l, err := netlink.LinkByName(n)
		if err != nil {
			continue
		}
		if err := netlink.LinkSetUp(l); err == nil {
			raised = append(raised, n)
		}
	}
	if len(raised) == 0 {
		return
	}
	wait := s.LinkWait
	if wait == 0 {
		wait = 4 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		all := true
		for _, n := range raised {
			if readTrim(filepath.Join(root, n, "carrier")) != "1" {
				all = false
			}
		}
		if all {
			return
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// Links lists the physical wired NICs: those with a device link in sysfs and no wireless
// directory (loopback, bridges, veths and Wi-Fi are left out).
func (s SystemLinks) Links(ctx context.Context) ([]Link, error) {
	root := filepath.Join(s.Sys, "class", "net")
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	if s.Sys == "/sys" {
		var down []string
		for _, e := range ents {
			dir := filepath.Join(root, e.Name())
			if !wiredNIC(dir) {
				continue
			}
			if f, err := strconv.ParseUint(strings.TrimPrefix(readTrim(filepath.Join(dir, "flags")), "0x"), 16, 32); err == nil && f&iffUp == 0 {
				down = append(down, e.Name())
			}
		}
		s.bringUp(ctx, root, down)
	}
	var et *ethtool.Client
	if s.Sys == "/sys" {
		// Only the live system has a kernel behind it; a fake tree has only files.
		if c, err := ethtool.New(); err == nil {
			et = c
			defer c.Close()
		}
	}
	var out []Link
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dir := filepath.Join(root, e.Name())
		if !wiredNIC(dir) {
			continue
		}
		l := Link{Name: e.Name(), MAC: readTrim(filepath.Join(dir, "address"))}
		// Reading carrier of a down interface fails with EINVAL: that is "no carrier".
		l.Carrier = readTrim(filepath.Join(dir, "carrier")) == "1"
		if l.Carrier {
			l.SpeedMbps, l.Duplex = sysfsSpeed(dir)
			if et != nil {
				// Virtual NICs (virtio) answer "not supported": sysfs' values then stand.
				if lm, err := et.LinkMode(ethtool.Interface{Name: e.Name()}); err == nil {
					if lm.SpeedMegabits > 0 && lm.SpeedMegabits < 1<<31-1 {
						l.SpeedMbps = lm.SpeedMegabits
					}
					switch lm.Duplex {
					case ethtool.Full:
						l.Duplex = "full"
					case ethtool.Half:
						l.Duplex = "half"
					}
				}
			}
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// wiredNIC reports whether the sysfs NIC directory is a physical, non-wireless NIC.
func wiredNIC(dir string) bool {
	return exists(filepath.Join(dir, "device")) && !exists(filepath.Join(dir, "wireless")) && !exists(filepath.Join(dir, "phy80211"))
}

func sysfsSpeed(dir string) (int, string) {
	speed, err := strconv.Atoi(readTrim(filepath.Join(dir, "speed")))
	if err != nil || speed < 0 {
		speed = 0
	}
	duplex := readTrim(filepath.Join(dir, "duplex"))
	if duplex != "full" && duplex != "half" {
		duplex = ""
	}
	return speed, duplex
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
