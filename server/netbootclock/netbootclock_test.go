package netbootclock

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/pxecfg"
)

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

const (
	macA   = "52:54:00:12:34:56"
	macB   = "52:54:00:12:34:57"
	cfgA   = "pxelinux.cfg/01-52-54-00-12-34-56"
	ipA    = "10.77.0.100"
	ipB    = "10.77.0.101"
	kernel = "vmlinuz"
	initrd = "initrd.gz"
)

type event func(c *Clock)

func hw(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func offer(ms int, mac, ip string) event {
	return func(c *Clock) { c.DHCPReply(hw(mac), addr(ip), true, false, at(ms)) }
}
func ack(ms int, mac, ip string) event {
	return func(c *Clock) { c.DHCPReply(hw(mac), addr(ip), true, true, at(ms)) }
}

// agentDHCP is the initramfs' own DHCP: not PXE firmware.
func agentDHCP(ms int, mac, ip string) event {
	return func(c *Clock) { c.DHCPReply(hw(mac), addr(ip), false, true, at(ms)) }
}
func tftp(ms int, ip, file string, dur int) event {
	return func(c *Clock) { c.Transfer(addr(ip), file, at(ms), at(ms+dur), true) }
}
func tftpFailed(ms int, ip, file string, dur int) event {
	return func(c *Clock) { c.Transfer(addr(ip), file, at(ms), at(ms+dur), false) }
}

// pxelinux is what pxelinux fetches after the firmware's DHCP, starting at ms: pxelinux.0,
// ldlinux.c32, a UUID config that does not exist (no event), the MAC's config, the kernel,
// the initrd (ending at ms+8700).
func pxelinux(ms int, ip string) []event {
	return []event{tftp(ms, ip, "pxelinux.0", 100), tftp(ms+200, ip, "ldlinux.c32", 200),
		tftp(ms+500, ip, cfgA, 10), tftp(ms+600, ip, kernel, 3000), tftp(ms+3700, ip, initrd, 5000)}
}

func cat(evs ...any) []event {
	var out []event
	for _, e := range evs {
		switch e := e.(type) {
		case event:
			out = append(out, e)
		case []event:
			out = append(out, e...)
		}
	}
	return out
}

func phases(kv ...any) []protocol.PhaseTiming {
	var out []protocol.PhaseTiming
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, protocol.PhaseTiming{Phase: kv[i].(string), DurationMS: int64(kv[i+1].(int))})
	}
	return out
}

func TestHello(t *testing.T) {
	tests := []struct {
		name    string
		events  []event
		helloIP string
		helloAt int
		want    []protocol.PhaseTiming
	}{
		{
			name:    "full DHCP: offer, ack, pxelinux, agent DHCP",
			events:  cat(offer(0, macA, ipA), ack(1000, macA, ipA), pxelinux(1100, ipA), agentDHCP(30000, macA, ipA)),
			helloIP: ipA, helloAt: 40000,
			want: phases(PhasePXEDHCP, 1000, PhaseTFTP, 8700, PhaseTFTPKernel, 3000, PhaseTFTPInitrd, 5000,
				PhaseNetbootToHello, 40000-9800),
		},
		{
			name:    "proxyDHCP: the offer has no address, the ack on 4011 has the client's",
			events:  cat(offer(0, macA, ""), ack(500, macA, ipA), pxelinux(600, ipA)),
			helloAt: 20000,
			want: phases(PhasePXEDHCP, 500, PhaseTFTP, 8700, PhaseTFTPKernel, 3000, PhaseTFTPInitrd, 5000,
				PhaseNetbootToHello, 20000-9300),
		},
		{
			name:    "plant's DHCP: the address is tied to the MAC by the config name, after pxelinux.0",
			events:  pxelinux(0, ipA),
			helloAt: 10000,
			want:    phases(PhaseTFTP, 8700, PhaseTFTPKernel, 3000, PhaseTFTPInitrd, 5000, PhaseNetbootToHello, 1300),
		},
		{
			name:    "never tied to the MAC: found by the agent's address",
			events:  cat(tftp(0, ipA, "pxelinux.0", 100), tftp(200, ipA, "pxelinux.cfg/default", 10)),
			helloIP: ipA, helloAt: 5000,
			want: phases(PhaseTFTP, 210, PhaseNetbootToHello, 4790),
		},
		{
			name:    "firmware size query (error 8) counts as the first request, not as an end",
			events:  cat(ack(0, macA, ipA), tftpFailed(100, ipA, "pxelinux.0", 5), tftp(110, ipA, "pxelinux.0", 90), tftpFailed(300, ipA, initrd, 20)),
			helloAt: 1000,
			want:    phases(PhasePXEDHCP, 0, PhaseTFTP, 100, PhaseNetbootToHello, 800),
		},
		{
			name: "the firmware starts over: only the last netboot counts",
			events: cat(offer(0, macA, ipA), ack(100, macA, ipA), tftp(200, ipA, "pxelinux.0", 100),
				offer(60000, macA, ipA), ack(61000, macA, ipA), pxelinux(62000, ipA)),
			helloAt: 80000,
			want: phases(PhasePXEDHCP, 1000, PhaseTFTP, 8700, PhaseTFTPKernel, 3000, PhaseTFTPInitrd, 5000,
				PhaseNetbootToHello, 80000-70700),
		},
		{
			name:    "another device's netboot does not mix in",
			events:  cat(offer(0, macA, ipA), offer(10, macB, ipB), ack(1000, macA, ipA), ack(1010, macB, ipB), tftp(1100, ipB, "pxelinux.0", 50), pxelinux(2000, ipA)),
			helloAt: 20000,
			want: phases(PhasePXEDHCP, 1000, PhaseTFTP, 8700, PhaseTFTPKernel, 3000, PhaseTFTPInitrd, 5000,
				PhaseNetbootToHello, 20000-10700),
		},
		{
			name:    "hello long after the netboot: nothing",
			events:  cat(ack(0, macA, ipA), pxelinux(100, ipA)),
			helloAt: 8800 + int(16*time.Minute/time.Millisecond),
		},
		{
			name:    "DHCP only (booted from other media after a PXE attempt): nothing",
			events:  cat(offer(0, macA, ipA), ack(100, macA, ipA)),
			helloAt: 5000,
		},
		{name: "never seen: nothing", helloAt: 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{Kernel: "/" + kernel, Initrd: initrd})
			for _, e := range tt.events {
				e(c)
			}
			got := c.Hello(hw(macA), addr(tt.helloIP), at(tt.helloAt))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
			if again := c.Hello(hw(macA), addr(tt.helloIP), at(tt.helloAt+1)); again != nil {
				t.Errorf("a second hello got %v; the netboot was already handed over", again)
			}
		})
	}
}

func TestBounded(t *testing.T) {
	c := New(Config{MaxDevices: 2})
	for i, ip := range []string{"10.77.0.1", "10.77.0.2", "10.77.0.3"} {
		mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}
		c.DHCPReply(mac, addr(ip), true, true, at(i*1000))
		c.Transfer(addr(ip), "pxelinux.0", at(i*1000+100), at(i*1000+200), true)
	}
	if n := len(c.byMAC) + len(c.byIP); n != 2 || len(c.ipMAC) != 2 {
		t.Fatalf("%d netboots and %d bindings kept, want 2 and 2", n, len(c.ipMAC))
	}
	if got := c.Hello(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0}, netip.Addr{}, at(5000)); got != nil {
		t.Errorf("the least recently active device is still there: %v", got)
	}
	if got := c.Hello(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, netip.Addr{}, at(5000)); len(got) == 0 {
		t.Error("the most recent device was forgotten")
	}
}

func TestConfigMAC(t *testing.T) {
	for _, tt := range []struct {
		file, want string
		ok         bool
	}{
		{cfgA, macA, true},
		{"efi64/pxelinux.cfg/01-52-54-00-12-34-56", macA, true},
		{"pxelinux.cfg/01-52-54-00-AB-CD-EF", "52:54:00:ab:cd:ef", true},
		{"pxelinux.cfg/default", "", false},
		{"pxelinux.cfg/C0A84D64", "", false},
		{"other/01-52-54-00-12-34-56", "", false},
		{"01-52-54-00-12-34-56", "", false},
	} {
		got, ok := ConfigMAC(tt.file)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ConfigMAC(%q) = %q, %v; want %q, %v", tt.file, got, ok, tt.want, tt.ok)
		}
	}
}

// The file name comes from the network.
func FuzzConfigMAC(f *testing.F) {
	for _, s := range []string{cfgA, "pxelinux.cfg/default", "a/pxelinux.cfg/01-zz-54-00-12-34-56", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		mac, ok := ConfigMAC(file)
		if !ok {
			return
		}
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			t.Fatalf("ConfigMAC(%q) = %q, not a MAC", file, mac)
		}
		if again, ok := ConfigMAC(pxecfg.ConfigName(hw)); !ok || again != mac {
			t.Fatalf("round trip of %q: %q, %v", mac, again, ok)
		}
	})
}
