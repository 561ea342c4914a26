package dhcp

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// PXE vendor options, carried inside option 43 (PXE specification 2.1,
// section 2.2.6).
const (
	pxeDiscoveryControl = 6
	pxeBootItem         = 71
	pxeEnd              = 255
	// Bit 3: the boot file is in this reply; download it without boot
	// server discovery and without a menu. dnsmasq sends the same when it
	// has a boot file but no pxe-service menu.
	discoveryUseBootFile = 0x08
)

// client is what a request says about the machine that sent it.
type client struct {
	mac  net.HardwareAddr
	pxe  bool // vendor class starts with "PXEClient"
	ipxe bool // user class "iPXE"
	arch iana.Arch
	// archKnown is false for PXE clients that sent neither option 93 nor
	// an architecture in their vendor class; they are taken for BIOS.
	archKnown bool
}

func classify(req *dhcpv4.DHCPv4) client {
	c := client{mac: req.ClientHWAddr}
	vc := req.ClassIdentifier()
	c.pxe = strings.HasPrefix(vc, "PXEClient")
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			c.ipxe = true
		}
	}
	if archs := req.ClientArch(); len(archs) > 0 {
		c.arch, c.archKnown = archs[0], true
	} else if a, ok := archFromVendorClass(vc); ok {
		c.arch, c.archKnown = a, true
	}
	return c
}

// archFromVendorClass reads the architecture from a vendor class such as
// "PXEClient:Arch:00007:UNDI:003016", for firmware that omits option 93.
func archFromVendorClass(vc string) (iana.Arch, bool) {
	const key = ":Arch:"
	i := strings.Index(vc, key)
	if i < 0 || len(vc) < i+len(key)+5 {
		return 0, false
	}
	n, err := strconv.ParseUint(vc[i+len(key):i+len(key)+5], 10, 16)
	if err != nil {
		return 0, false
	}
	return iana.Arch(n), true
}

// bootFile is the file for c, or "" when there is none.
func (s *Server) bootFile(c client) string {
	b := s.cfg.Boot
	if c.ipxe && b.IPXE != "" {
		return b.IPXE
	}
	if f, ok := b.ByArch[uint16(c.arch)]; ok {
		return f
	}
	switch c.arch {
	case iana.INTEL_X86PC:
		return b.BIOS
	case iana.EFI_X86_64, iana.EFI_BC:
		return b.EFI64
	case iana.EFI_IA32:
		return b.EFI32
	}
	return ""
}

// respond builds the reply to req, or returns nil to stay silent.
func (s *Server) respond(req *dhcpv4.DHCPv4, pxePort bool) *dhcpv4.DHCPv4 {
	if req.OpCode != dhcpv4.OpcodeBootRequest || len(req.ClientHWAddr) != 6 || req.HWType != iana.HWTypeEthernet {
		s.log.Debug("ignored: not an Ethernet BOOTREQUEST", "op", req.OpCode.String(), "hlen", len(req.ClientHWAddr))
		return nil
	}
	c := classify(req)
	if s.cfg.Mode == ModeProxy {
		return s.respondProxy(req, c, pxePort)
	}
	return s.respondFull(req, c)
}

// respondProxy answers PXE clients only, never with an address.
func (s *Server) respondProxy(req *dhcpv4.DHCPv4, c client, pxePort bool) *dhcpv4.DHCPv4 {
	if !c.pxe {
		return nil // the plant's DHCP server's business
	}
	mt := req.MessageType()
	var replyType dhcpv4.MessageType
	switch {
	case !pxePort && mt == dhcpv4.MessageTypeDiscover:
		replyType = dhcpv4.MessageTypeOffer
	case pxePort && (mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform):
		replyType = dhcpv4.MessageTypeAck
	case !pxePort && mt == dhcpv4.MessageTypeRequest && s.isUs(req.ServerIdentifier()):
		// Some ROMs send their proxyDHCP request to port 67 of the
		// proxy they picked; answer it like one on port 4011.
		replyType = dhcpv4.MessageTypeAck
	default:
		// REQUESTs to the plant's server, RELEASEs and the rest.
		return nil
	}
	file := s.bootFile(c)
	if file == "" {
		s.log.Info("no boot file for this client architecture; not answering", "mac", c.mac.String(), "arch", c.arch.String())
		return nil
	}
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(replyType),
		dhcpv4.WithServerIP(s.cfg.NextServer.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.ServerIP.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeVendorOptions(req))),
	)
	if err != nil {
		s.log.Error("cannot build reply", "err", err)
		return nil
	}
	if replyType == dhcpv4.MessageTypeOffer {
		// No address to unicast to: the offer is broadcast.
		resp.SetBroadcast()
	} else {
		resp.ClientIPAddr = req.ClientIPAddr
	}
	// UEFI firmware (EDK2) drops proxy replies whose option 97 does not
	// match the one it sent.
	if guid := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); guid != nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	}
	s.setBoot(resp, file)
	s.log.Info("proxyDHCP "+strings.ToLower(replyType.String()), "mac", c.mac.String(), "arch", c.arch.String(),
		"ipxe", c.ipxe, "file", file, "port4011", pxePort)
	return resp
}

// pxeVendorOptions is option 43 for proxy replies: discovery control, and
// the boot item echoed back when the client asked for one (boot server
// discovery requests carry it and firmware expects it in the answer).
func pxeVendorOptions(req *dhcpv4.DHCPv4) []byte {
	v := []byte{pxeDiscoveryControl, 1, discoveryUseBootFile}
	if item, ok := findPXESubOption(req.GetOneOption(dhcpv4.OptionVendorSpecificInformation), pxeBootItem); ok && len(item) == 4 {
		v = append(v, pxeBootItem, 4)
		v = append(v, item...)
	}
	return append(v, pxeEnd)
}

// findPXESubOption finds a sub-option in PXE vendor options (type, length,
// value, ending with 255). Truncated or malformed data yields false.
func findPXESubOption(b []byte, code byte) ([]byte, bool) {
	for len(b) > 0 {
		t := b[0]
		if t == pxeEnd {
			return nil, false
		}
		if t == 0 { // pad
			b = b[1:]
			continue
		}
		if len(b) < 2 || len(b) < 2+int(b[1]) {
			return nil, false
		}
		val := b[2 : 2+int(b[1])]
		if t == code {
			return val, true
		}
		b = b[2+int(b[1]):]
	}
	return nil, false
}

// setBoot writes the boot server and file into both the BOOTP fields and
// options 66/67: firmware reads one or the other.
func (s *Server) setBoot(resp *dhcpv4.DHCPv4, file string) {
	resp.ServerIPAddr = s.cfg.NextServer.AsSlice()
	resp.ServerHostName = s.cfg.NextServer.String()
	resp.BootFileName = file
	resp.UpdateOption(dhcpv4.OptTFTPServerName(s.cfg.NextServer.String()))
	resp.UpdateOption(dhcpv4.OptBootFileName(file))
}

func (s *Server) isUs(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip.To4())
	return ok && ip.To4() != nil && a == s.cfg.ServerIP
}

// respondFull is an ordinary DHCP server over the pool.
func (s *Server) respondFull(req *dhcpv4.DHCPv4, c client) *dhcpv4.DHCPv4 {
	log := s.log.With("mac", c.mac.String())
	requested, _ := netip.AddrFromSlice(req.RequestedIPAddress().To4())
	ciaddr, _ := netip.AddrFromSlice(req.ClientIPAddr.To4())
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		ip, ok := s.pool.offerTo(c.mac, requested, c.pxe)
		if !ok {
			if !c.pxe && s.pool.nonPXEMax >= 0 {
				log.Warn("no offer: clients that did not PXE-boot hold their share of the pool", "max", s.pool.nonPXEMax)
				return nil
			}
			log.Warn("address pool exhausted; no offer")
			return nil
		}
		return s.fullReply(req, c, dhcpv4.MessageTypeOffer, ip)
	case dhcpv4.MessageTypeRequest:
		sid := req.ServerIdentifier()
		if sid != nil && !s.isUs(sid) {
			// The client took another server's offer.
			return nil
		}
		ip := requested
		if !ip.IsValid() || ip.IsUnspecified() {
			ip = ciaddr // renewing or rebinding
		}
		if !ip.IsValid() || ip.IsUnspecified() {
			log.Warn("REQUEST without an address; ignored")
			return nil
		}
		lease, err := s.pool.bindTo(c.mac, ip, s.cfg.LeaseTime, req.HostName(), c.pxe)
		if err != nil {
			log.Info("NAK", "ip", ip.String(), "reason", err.Error())
			return s.nak(req, err.Error())
		}
		log.Info("lease", "ip", lease.IP.String(), "expires", lease.Expires.Format("15:04:05"), "pxe", c.pxe, "arch", c.arch.String())
		return s.fullReply(req, c, dhcpv4.MessageTypeAck, ip)
	case dhcpv4.MessageTypeRelease:
		if err := s.pool.release(c.mac, ciaddr); err != nil {
			log.Error("release", "err", err)
		}
		return nil
	case dhcpv4.MessageTypeDecline:
		log.Warn("client declined an address: in use by something else", "ip", requested.String())
		if err := s.pool.decline(c.mac, requested); err != nil {
			log.Error("decline", "err", err)
		}
		return nil
	case dhcpv4.MessageTypeInform:
		resp := s.fullReply(req, c, dhcpv4.MessageTypeAck, netip.Addr{})
		if resp != nil {
			resp.ClientIPAddr = req.ClientIPAddr
			resp.Options.Del(dhcpv4.OptionIPAddressLeaseTime)
		}
		return resp
	}
	return nil
}

func (s *Server) fullReply(req *dhcpv4.DHCPv4, c client, mt dhcpv4.MessageType, ip netip.Addr) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithServerIP(s.cfg.NextServer.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.ServerIP.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(s.cfg.Subnet.Bits(), 32))),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(s.cfg.LeaseTime)),
	}
	if ip.IsValid() {
		mods = append(mods, dhcpv4.WithYourIP(ip.AsSlice()))
	}
	if s.cfg.Router.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(s.cfg.Router.AsSlice())))
	}
	if len(s.cfg.DNS) > 0 {
		var dns []net.IP
		for _, d := range s.cfg.DNS {
			dns = append(dns, d.AsSlice())
		}
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(dns...)))
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		s.log.Error("cannot build reply", "err", err)
		return nil
	}
	if c.pxe || c.ipxe {
		if file := s.bootFile(c); file != "" {
			s.setBoot(resp, file)
		}
	}
	return resp
}

// nak refuses a REQUEST. RFC 2131 4.3.2: a NAK is broadcast when the request
// did not come through a relay, since the client's address is not usable.
func (s *Server) nak(req *dhcpv4.DHCPv4, msg string) *dhcpv4.DHCPv4 {
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.ServerIP.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMessage(msg)),
	)
	if err != nil {
		return nil
	}
	resp.SetBroadcast()
	return resp
}
