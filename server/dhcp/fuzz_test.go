package dhcp

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzRespond feeds arbitrary bytes through the same path as a packet from
// the network: insomniacslk's decoder, then our reply logic in both modes and
// on both ports. Nothing may panic, and every reply must be encodable and
// decodable again.
func FuzzRespond(f *testing.F) {
	for _, arch := range []iana.Arch{iana.INTEL_X86PC, iana.EFI_BC, iana.EFI_ARM64} {
		for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform, dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline} {
			m, _ := dhcpv4.New(append(pxe(arch), dhcpv4.WithHwAddr(mac(1)), dhcpv4.WithMessageType(mt),
				dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(netip.MustParseAddr("10.77.0.101").AsSlice())),
				dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{71, 4, 0x80, 0, 0, 0, 255}))...)
			f.Add(m.ToBytes())
		}
	}
	f.Add([]byte{})
	log := slog.New(slog.DiscardHandler)
	dir := f.TempDir()
	proxy := &Server{cfg: Config{Mode: ModeProxy, ServerIP: netip.MustParseAddr("10.77.0.1")}, log: log}
	full := &Server{cfg: fullConfig(dir), log: log}
	for _, s := range []*Server{proxy, full} {
		if err := s.setDefaults(&s.cfg); err != nil {
			f.Fatal(err)
		}
	}
	full.cfg.ServerIP = netip.MustParseAddr("10.77.0.1")
	full.cfg.LeaseFile = ""
	var err error
	if full.pool, err = newPool(full.cfg.RangeStart, full.cfg.RangeEnd, nil, "", log); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		for _, s := range []*Server{proxy, full} {
			for _, pxePort := range []bool{false, true} {
				resp := s.respond(req, pxePort)
				if resp == nil {
					continue
				}
				if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
					t.Fatalf("reply does not decode: %v\n%s", err, resp.Summary())
				}
				if s == proxy && !resp.YourIPAddr.IsUnspecified() {
					t.Fatalf("proxy reply offers %s", resp.YourIPAddr)
				}
			}
		}
	})
}

func FuzzFindPXESubOption(f *testing.F) {
	f.Add([]byte{6, 1, 8, 71, 4, 0x80, 0, 0, 0, 255}, byte(71))
	f.Add([]byte{0, 0, 71}, byte(71))
	f.Fuzz(func(t *testing.T, b []byte, code byte) {
		v, ok := findPXESubOption(b, code)
		if ok && len(v) > len(b) {
			t.Fatal("value longer than the input")
		}
	})
}

func FuzzArchFromVendorClass(f *testing.F) {
	f.Add("PXEClient:Arch:00007:UNDI:003016")
	f.Add("PXEClient:Arch:99999")
	f.Add("PXEClient:Arch:")
	f.Fuzz(func(t *testing.T, vc string) {
		archFromVendorClass(vc)
	})
}
