package config

import (
	"strings"
	"testing"
	"time"
)

func TestLimitsDefaultsAndOverrides(t *testing.T) {
	c, err := Parse([]byte("tftp: {enabled: false, max_transfers: 10}\nlimits: {http: {stall_timeout: 5s}, dhcp: {non_pxe_share: 1}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.HTTP.StallTimeout != 5*time.Second || l.HTTP.ReadHeaderTimeout != DefaultReadHeaderTimeout || l.HTTP.MaxConnsPerClient != 32 {
		t.Errorf("http limits: %+v", l.HTTP)
	}
	if l.TFTP.MaxTransfers != 10 || l.TFTP.MaxPerClient != 4 || l.TFTP.MaxIdle != 15*time.Second {
		t.Errorf("tftp limits (tftp.max_transfers must win): %+v", l.TFTP)
	}
	if *l.DHCP.NonPXEShare != 1 || l.DHCP.NewLeases != "any" || l.Hello.MaxBody != 256<<10 {
		t.Errorf("dhcp/hello limits: %+v %+v", l.DHCP, l.Hello)
	}
	c, _ = Parse(nil)
	if *c.Limits.DHCP.NonPXEShare != 0.5 {
		t.Errorf("default non_pxe_share %v", *c.Limits.DHCP.NonPXEShare)
	}
}

func TestLimitsValidation(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"limits: {http: {stall_timeout: 10ms}}", "limits.http.stall_timeout 10ms: at least 1s"},
		{"limits: {http: {max_conns_per_client: 100, max_conns: 50}}", "above limits.http.max_conns"},
		{"limits: {hello: {max_body: 1MB, max_list_items: -1}}", "limits.hello.max_list_items -1"},
		{"limits: {hello: {max_body: 10MiB}}", "limits.hello.max_body"},
		{"limits: {tftp: {max_per_client: 100}}", "above limits.tftp.max_transfers"},
		{"limits: {dhcp: {new_leases: some}}", `new_leases "some": want any or pxe`},
		{"limits: {dhcp: {non_pxe_share: 1.5}}", "non_pxe_share 1.5"},
		{"limits: {dhcp: {non_pxe_share: .nan}}", "non_pxe_share: want a finite number"},
		{"limits: {http: {max_event_stream: 3}}", `did you mean "max_event_streams"`},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// Whatever the limits block says, an accepted configuration has every limit usable: positive
// counts and durations of at least a second, shares within 0 to 1.
func FuzzLimits(f *testing.F) {
	f.Add([]byte("limits: {http: {stall_timeout: 5s, max_conns: 10, max_conns_per_client: 2}}"))
	f.Add([]byte("limits: {tftp: {max_transfers: 1}, dhcp: {new_leases: pxe, non_pxe_share: 0}}"))
	f.Add([]byte("limits: {hello: {max_body: 4KiB, max_string: 1}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		l := c.Limits
		for _, d := range []time.Duration{l.HTTP.ReadHeaderTimeout, l.HTTP.BodyTimeout, l.HTTP.WriteTimeout, l.HTTP.IdleTimeout,
			l.HTTP.StallTimeout, l.TFTP.MaxIdle, l.TFTP.MaxLifetime} {
			if d < time.Second {
				t.Fatalf("accepted duration %s", d)
			}
		}
		for _, n := range []int{l.HTTP.MaxConns, l.HTTP.MaxConnsPerClient, l.HTTP.MaxEventStreams, l.Hello.MaxListItems,
			l.Hello.MaxString, l.TFTP.MaxTransfers, l.TFTP.MaxPerClient} {
			if n < 1 {
				t.Fatalf("accepted count %d", n)
			}
		}
		if l.HTTP.MaxConnsPerClient > l.HTTP.MaxConns || l.TFTP.MaxPerClient > l.TFTP.MaxTransfers {
			t.Fatalf("per-client above total: %+v %+v", l.HTTP, l.TFTP)
		}
		if s := *l.DHCP.NonPXEShare; !(s >= 0 && s <= 1) || l.Hello.MaxBody < 4<<10 || l.Hello.MaxBody > 4<<20 {
			t.Fatalf("accepted %v / %d", s, l.Hello.MaxBody)
		}
	})
}
