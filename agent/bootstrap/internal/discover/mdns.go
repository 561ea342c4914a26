package discover

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
)

// mdnsGroup is the IPv4 multicast DNS address (RFC 6762).
var mdnsGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

// MDNSResolver sends one-shot multicast DNS queries (RFC 6762 section 5.1): the query goes
// from an ephemeral port, so responders answer by unicast to that port and no mDNS daemon,
// group membership or port 5353 is needed on the device.
type MDNSResolver struct {
	// Iface is the interface to send on (the boot NIC); nil lets the kernel choose.
	Iface *net.Interface
	// Addr is where queries go; nil means 224.0.0.251:5353. Tests point it at a fake.
	Addr *net.UDPAddr
	// Wait is how long each attempt waits for answers; zero means 1s.
	Wait time.Duration
	// Attempts is how many queries are sent; zero means 3.
	Attempts int
}

// LookupIPv4 returns the A records answering name.
func (m *MDNSResolver) LookupIPv4(ctx context.Context, name string) ([]net.IP, error) {
	addr, wait, attempts := m.Addr, m.Wait, m.Attempts
	if addr == nil {
		addr = mdnsGroup
	}
	if wait == 0 {
		wait = time.Second
	}
	if attempts == 0 {
		attempts = 3
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("mdns socket: %w", err)
	}
	defer conn.Close()
	if addr.IP.IsMulticast() {
		pc := ipv4.NewPacketConn(conn)
		if m.Iface != nil {
			if err := pc.SetMulticastInterface(m.Iface); err != nil {
				return nil, fmt.Errorf("mdns on %s: %w", m.Iface.Name, err)
			}
		}
		_ = pc.SetMulticastTTL(255) // RFC 6762 section 11
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	buf := make([]byte, 9000)
	for range attempts {
		id, q, err := buildQuery(name)
		if err != nil {
			return nil, err
		}
		if _, err := conn.WriteToUDP(q, addr); err != nil {
			return nil, fmt.Errorf("mdns query for %s: %w", name, err)
		}
		deadline := time.Now().Add(wait)
		if err := conn.SetReadDeadline(deadline); err != nil {
			return nil, err
		}
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("mdns query for %s: %w", name, ctx.Err())
				}
				break // this attempt's time is up
			}
			ips, err := ParseResponse(buf[:n], id, name)
			if err == nil && len(ips) > 0 {
				return ips, nil
			}
		}
	}
	return nil, fmt.Errorf("no mDNS answer for %s after %d queries", name, attempts)
}

// buildQuery returns a query for name's A record with the unicast-response bit set.
func buildQuery(name string) (uint16, []byte, error) {
	var idb [2]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return 0, nil, err
	}
	id := binary.BigEndian.Uint16(idb[:])
	n, err := dnsmessage.NewName(fqdn(name))
	if err != nil {
		return 0, nil, fmt.Errorf("mdns name %q: %w", name, err)
	}
	msg := dnsmessage.Message{
		Header: dnsmessage.Header{ID: id},
		Questions: []dnsmessage.Question{{
			Name:  n,
			Type:  dnsmessage.TypeA,
			Class: dnsmessage.ClassINET | 1<<15, // QU: "answer me by unicast"
		}},
	}
	b, err := msg.Pack()
	return id, b, err
}

// ParseResponse returns the IPv4 addresses that a DNS response message gives for name. A
// response whose ID is neither the query's nor 0 (mDNS responders may use 0) is refused, as
// is anything that is not a response.
func ParseResponse(pkt []byte, id uint16, name string) ([]net.IP, error) {
	var p dnsmessage.Parser
	h, err := p.Start(pkt)
	if err != nil {
		return nil, fmt.Errorf("parse mdns answer: %w", err)
	}
	if !h.Response {
		return nil, errors.New("not a response")
	}
	if h.ID != id && h.ID != 0 {
		return nil, errors.New("answer to another query")
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, fmt.Errorf("parse mdns answer: %w", err)
	}
	want := strings.ToLower(fqdn(name))
	var ips []net.IP
	// Responders may put the A record in the answers or, for a legacy query, in additionals.
	for section := 0; section < 3; section++ {
		for {
			var rh dnsmessage.ResourceHeader
			switch section {
			case 0:
				rh, err = p.AnswerHeader()
			case 1:
				rh, err = p.AuthorityHeader()
			default:
				rh, err = p.AdditionalHeader()
			}
			if errors.Is(err, dnsmessage.ErrSectionDone) {
				break
			}
			if err != nil {
				return ips, fmt.Errorf("parse mdns answer: %w", err)
			}
			if rh.Type != dnsmessage.TypeA || strings.ToLower(rh.Name.String()) != want || rh.Class&0x7fff != dnsmessage.ClassINET {
				if err := skip(&p, section); err != nil {
					return ips, fmt.Errorf("parse mdns answer: %w", err)
				}
				continue
			}
			a, err := p.AResource()
			if err != nil {
				return ips, fmt.Errorf("parse mdns answer: %w", err)
			}
			ips = append(ips, net.IPv4(a.A[0], a.A[1], a.A[2], a.A[3]).To4())
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no A record for %s", name)
	}
	return ips, nil
}

func skip(p *dnsmessage.Parser, section int) error {
	switch section {
	case 0:
		return p.SkipAnswer()
	case 1:
		return p.SkipAuthority()
	default:
		return p.SkipAdditional()
	}
}

func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}
