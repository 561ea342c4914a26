package discover

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		want    []Method
		wantErr string
	}{
		{"", []Method{{Kind: DHCP}, {Kind: DNS, Name: "flashline-server.local"}}, ""},
		{"dhcp", []Method{{Kind: DHCP}}, ""},
		{"dhcp:9000", []Method{{Kind: DHCP, Port: 9000}}, ""},
		{"DNS:Line-Server.Plant.Example.:8443, mdns:fl.local",
			[]Method{{Kind: DNS, Name: "line-server.plant.example", Port: 8443}, {Kind: MDNS, Name: "fl.local"}}, ""},
		{"dns:", nil, "host name"},
		{"dns:bad_name", nil, "bad host name"},
		{"dns:-x.local", nil, "bad host name"},
		{"dns:x.local:0", nil, "bad port"},
		{"dns:x.local:http", nil, "bad port"},
		{"tftp", nil, "unknown method"},
		{",,", nil, "no method"},
	} {
		got, err := ParseSpec(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSpec(%q) error = %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"", "dhcp", "dns:a.local:80", "mdns:x", "dhcp:1,dns:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ms, err := ParseSpec(spec)
		if err != nil {
			return
		}
		// What parses must print and parse back to the same methods.
		parts := make([]string, len(ms))
		for i, m := range ms {
			parts[i] = m.String()
		}
		again, err := ParseSpec(strings.Join(parts, ","))
		if err != nil || !reflect.DeepEqual(again, ms) {
			t.Fatalf("%q -> %v -> %v, %v", spec, ms, again, err)
		}
	})
}

func TestFromLease(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lease   Lease
		want    string
		wantErr bool
	}{
		{"http boot file", Lease{BootFile: "http://10.1.2.3:9000/boot.ipxe", NextServer: net.IPv4(10, 9, 9, 9)}, "http://10.1.2.3:9000", false},
		{"https boot file", Lease{BootFile: "https://line.example/x"}, "https://line.example", false},
		{"next-server", Lease{BootFile: "pxelinux.0", NextServer: net.IPv4(10, 0, 2, 2)}, "http://10.0.2.2:8080", false},
		{"zero next-server", Lease{NextServer: net.IPv4zero}, "", true},
		{"option 66 address", Lease{NextServer: net.IPv4zero, TFTPServer: "10.77.0.1"}, "http://10.77.0.1:8080", false},
		{"option 66 name", Lease{TFTPServer: "Boot.Line.Example."}, "http://boot.line.example:8080", false},
		{"option 66 garbage, server id", Lease{TFTPServer: "not a name!", ServerID: net.IPv4(10, 77, 0, 2)}, "http://10.77.0.2:8080", false},
		{"server identifier", Lease{ServerID: net.IPv4(10, 77, 0, 1)}, "http://10.77.0.1:8080", false},
		{"next-server before server id", Lease{NextServer: net.IPv4(10, 77, 0, 5), ServerID: net.IPv4(10, 77, 0, 1)}, "http://10.77.0.5:8080", false},
		{"broadcast server id", Lease{ServerID: net.IPv4bcast}, "", true},
		{"nothing", Lease{}, "", true},
	} {
		got, err := FromLease(tc.lease, DefaultPort)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: FromLease = %q, %v; want %q (err %v)", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

type fakeResolver map[string][]net.IP

func (f fakeResolver) LookupIPv4(ctx context.Context, name string) ([]net.IP, error) {
	if ips, ok := f[name]; ok {
		return ips, nil
	}
	return nil, errors.New("no such host")
}

func TestFinderOrder(t *testing.T) {
	dns := fakeResolver{"line.plant.example": {net.IPv4(10, 0, 0, 7)}}
	mdns := fakeResolver{"flashline-server.local": {net.IPv4(192, 168, 1, 5)}}
	for _, tc := range []struct {
		name    string
		spec    string
		lease   Lease
		want    string
		wantErr bool
	}{
		{"dhcp first", "", Lease{NextServer: net.IPv4(10, 0, 2, 2)}, "http://10.0.2.2:8080", false},
		{"falls through to mdns", "", Lease{}, "http://192.168.1.5:8080", false},
		{"unicast dns with port", "dns:line.plant.example:9000", Lease{}, "http://10.0.0.7:9000", false},
		{"explicit mdns", "mdns:flashline-server.local", Lease{NextServer: net.IPv4(1, 1, 1, 1)}, "http://192.168.1.5:8080", false},
		{"nothing found", "dhcp,dns:nowhere.example", Lease{}, "", true},
	} {
		ms, err := ParseSpec(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		var log []string
		f := Finder{Lease: tc.lease, DNS: dns, MDNS: mdns, Logf: func(format string, args ...any) { log = append(log, format) }}
		got, err := f.Find(context.Background(), ms)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: Find = %q, %v; want %q", tc.name, got, err, tc.want)
		}
		if len(log) == 0 {
			t.Errorf("%s: nothing logged", tc.name)
		}
	}
}

// fakeResponder answers mDNS queries on a loopback UDP port like a responder answering a
// one-shot (legacy unicast) query: same ID, the question echoed, the A record in answers.
func fakeResponder(t *testing.T, records map[string]net.IP, extra func(id uint16) [][]byte) *net.UDPAddr {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if err := m.Unpack(buf[:n]); err != nil || len(m.Questions) != 1 {
				continue
			}
			q := m.Questions[0]
			if q.Class&(1<<15) == 0 {
				t.Errorf("query without the unicast-response bit")
			}
			if extra != nil {
				for _, b := range extra(m.Header.ID) {
					conn.WriteToUDP(b, from)
				}
			}
			ip, ok := records[strings.TrimSuffix(q.Name.String(), ".")]
			if !ok {
				continue
			}
			resp := dnsmessage.Message{
				Header:    dnsmessage.Header{ID: m.Header.ID, Response: true, Authoritative: true},
				Questions: []dnsmessage.Question{{Name: q.Name, Type: q.Type, Class: dnsmessage.ClassINET}},
				Answers: []dnsmessage.Resource{
					{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("other.local."), Type: dnsmessage.TypeTXT, Class: dnsmessage.ClassINET}, Body: &dnsmessage.TXTResource{TXT: []string{"x"}}},
					{Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET | 1<<15, TTL: 120}, Body: &dnsmessage.AResource{A: [4]byte(ip.To4())}},
				},
			}
			b, err := resp.Pack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.WriteToUDP(b, from)
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr)
}

func TestMDNSResolver(t *testing.T) {
	// A stray answer to another query comes first and must be ignored.
	stray := func(id uint16) [][]byte {
		m := dnsmessage.Message{Header: dnsmessage.Header{ID: id + 1, Response: true},
			Answers: []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("flashline-server.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}, Body: &dnsmessage.AResource{A: [4]byte{6, 6, 6, 6}}}}}
		b, _ := m.Pack()
		return [][]byte{b, []byte("garbage")}
	}
	addr := fakeResponder(t, map[string]net.IP{"flashline-server.local": net.IPv4(10, 0, 2, 2)}, stray)
	r := &MDNSResolver{Addr: addr, Wait: 300 * time.Millisecond, Attempts: 2}
	ips, err := r.LookupIPv4(context.Background(), "flashline-server.local")
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) != 1 || !ips[0].Equal(net.IPv4(10, 0, 2, 2)) {
		t.Errorf("got %v, want 10.0.2.2", ips)
	}

	start := time.Now()
	_, err = r.LookupIPv4(context.Background(), "absent.local")
	if err == nil {
		t.Fatal("absent name resolved")
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("gave up after %s, before both attempts' waits", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r.Wait = 10 * time.Second
	start = time.Now()
	if _, err := r.LookupIPv4(ctx, "absent.local"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled lookup: err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled lookup took %s", d)
	}
}

func FuzzParseResponse(f *testing.F) {
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, Response: true},
		Answers: []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("a.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}, Body: &dnsmessage.AResource{A: [4]byte{1, 2, 3, 4}}}}}
	b, _ := m.Pack()
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		ips, err := ParseResponse(pkt, 7, "a.local")
		if err == nil && len(ips) == 0 {
			t.Fatal("no error and no address")
		}
		for _, ip := range ips {
			if ip.To4() == nil {
				t.Fatalf("non-IPv4 result %v", ip)
			}
		}
	})
}
