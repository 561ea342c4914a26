package hwsimap

import (
	"net"
	"testing"
)

func TestLeases(t *testing.T) {
	l := &leases{server: net.IPv4(192, 168, 77, 1).To4(), mask: net.CIDRMask(24, 32), byMAC: map[string]net.IP{}}
	a, b := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	tests := []struct {
		mac  net.HardwareAddr
		want string
	}{{a, "192.168.77.100"}, {b, "192.168.77.101"}, {a, "192.168.77.100"}}
	for _, tt := range tests {
		ip, err := l.lease(tt.mac)
		if err != nil || ip.String() != tt.want {
			t.Errorf("lease(%s) = %v, %v; want %s", tt.mac, ip, err, tt.want)
		}
	}
	for i := range 98 {
		if _, err := l.lease(net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}); err != nil {
			t.Fatalf("lease %d: %v", i, err)
		}
	}
	if _, err := l.lease(net.HardwareAddr{2, 0, 0, 0, 2, 0}); err == nil {
		t.Error("pool of 100 gave a 101st address")
	}
}
