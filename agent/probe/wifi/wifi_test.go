package wifi

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashline/flashline/protocol/sink"
	mwifi "github.com/mdlayher/wifi"
)

type fakeClient struct {
	mu          sync.Mutex
	ifis        []*mwifi.Interface
	aps         []*mwifi.BSS
	scanErr     error
	scans       int
	joinable    map[string]*mwifi.BSS // SSID -> BSS the kernel would join
	joined      *mwifi.BSS
	connects    int
	disconnects int
}

func (f *fakeClient) Interfaces() ([]*mwifi.Interface, error) { return f.ifis, nil }
func (f *fakeClient) Scan(ctx context.Context, _ *mwifi.Interface) error {
	f.mu.Lock()
	f.scans++
	f.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(5 * time.Millisecond):
	}
	return f.scanErr
}
func (f *fakeClient) AccessPoints(*mwifi.Interface) ([]*mwifi.BSS, error) { return f.aps, nil }
func (f *fakeClient) Connect(_ *mwifi.Interface, ssid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connects++
	if b, ok := f.joinable[ssid]; ok {
		j := *b
		j.Status = mwifi.BSSStatusAssociated
		f.joined = &j
	}
	return nil
}
func (f *fakeClient) Disconnect(*mwifi.Interface) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disconnects++
	f.joined = nil
	return nil
}
func (f *fakeClient) BSS(*mwifi.Interface) (*mwifi.BSS, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.joined == nil {
		return nil, errors.New("not associated")
	}
	return f.joined, nil
}

type fakeLinks struct{ up []int }

func (l *fakeLinks) SetUp(index int, up bool) error {
	if up {
		l.up = append(l.up, index)
	}
	return nil
}

func bss(ssid string, signalDBm int32, freq int) *mwifi.BSS {
	return &mwifi.BSS{SSID: ssid, BSSID: net.HardwareAddr{2, 0, 0, 0, 1, 0}, Frequency: freq, Signal: signalDBm * 100}
}

func ip(i int) *int { return &i }

func stale(b *mwifi.BSS) *mwifi.BSS {
	b.LastSeen = time.Hour
	return b
}

var (
	sta = &mwifi.Interface{Index: 3, Name: "wlan0", Type: mwifi.InterfaceTypeStation, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0}}
	ap  = &mwifi.Interface{Index: 4, Name: "wlan1", Type: mwifi.InterfaceTypeAP}
)

func TestScan(t *testing.T) {
	tests := []struct {
		name    string
		ifis    []*mwifi.Interface
		aps     []*mwifi.BSS
		scanErr error
		min     *int
		wantErr error
		wantMsg string
		wantDBm float64
	}{
		{name: "found", ifis: []*mwifi.Interface{ap, sta}, aps: []*mwifi.BSS{bss("OTHER", -20, 2437), bss("LINE-TEST", -55, 2412), bss("LINE-TEST", -40, 5180)}, min: ip(-65), wantDBm: -40},
		{name: "found despite scan errors", ifis: []*mwifi.Interface{sta}, aps: []*mwifi.BSS{bss("LINE-TEST", -55, 2412)}, scanErr: errors.New("device busy"), wantDBm: -55},
		{name: "too weak", ifis: []*mwifi.Interface{sta}, aps: []*mwifi.BSS{bss("LINE-TEST", -80, 2412)}, min: ip(-65), wantErr: ErrNotFound, wantMsg: `"LINE-TEST" heard at -80 dBm (02:00:00:00:01:00, 2412 MHz), below the minimum -65 dBm`},
		{name: "absent", ifis: []*mwifi.Interface{sta}, aps: []*mwifi.BSS{bss("OTHER", -30, 2412)}, wantErr: ErrNotFound, wantMsg: `"LINE-TEST" not heard on wlan0 in`},
		{name: "only an AP interface", ifis: []*mwifi.Interface{ap}, wantErr: ErrNoInterface, wantMsg: "only wlan1"},
		{name: "no interface", wantErr: ErrNoInterface},
		{name: "stale result ignored", ifis: []*mwifi.Interface{sta}, aps: []*mwifi.BSS{stale(bss("LINE-TEST", -40, 2412))}, wantErr: ErrNotFound, wantMsg: "heard nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClient{ifis: tt.ifis, aps: tt.aps, scanErr: tt.scanErr}
			links := &fakeLinks{}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			res, err := Scan(ctx, c, links, ScanRequest{SSID: "LINE-TEST", MinSignalDBm: tt.min, InterfaceWait: 50 * time.Millisecond})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Found == nil || res.Found.SignalDBm != tt.wantDBm || res.Interface != "wlan0" {
				t.Fatalf("result %+v", res)
			}
			if len(links.up) != 1 || links.up[0] != 3 {
				t.Errorf("links brought up: %v", links.up)
			}
		})
	}
}

// loopNetwork is a Network over loopback with a real sink.
type loopNetwork struct {
	sink     string
	released bool
	dhcpErr  error
}

func (n *loopNetwork) DHCP(context.Context, string) (netip.Prefix, error) {
	return netip.MustParsePrefix("127.0.0.1/8"), n.dhcpErr
}
func (n *loopNetwork) Dial(ctx context.Context, _ string, _ netip.Addr, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}
func (n *loopNetwork) Release(string, netip.Prefix) error { n.released = true; return nil }

func TestThroughput(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	go sink.Serve(sctx, ln, time.Minute, nil)

	tests := []struct {
		name    string
		ssid    string
		min     float64
		dhcpErr error
		wantErr string
	}{
		{name: "passes", ssid: "LINE-TEST", min: 1},
		{name: "too slow", ssid: "LINE-TEST", min: 1e9, wantErr: "throughput below minimum"},
		{name: "cannot associate", ssid: "NOPE", wantErr: `wlan0 did not associate with "NOPE"`},
		{name: "no DHCP", ssid: "LINE-TEST", dhcpErr: errors.New("no offer"), wantErr: "DHCP on wlan0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClient{ifis: []*mwifi.Interface{sta}, joinable: map[string]*mwifi.BSS{"LINE-TEST": bss("LINE-TEST", -30, 2412)}}
			nw := &loopNetwork{dhcpErr: tt.dhcpErr}
			res, err := Throughput(context.Background(), c, &fakeLinks{}, nw, ThroughputRequest{
				SSID: tt.ssid, Sink: ln.Addr().String(), Duration: 100 * time.Millisecond, MinMbps: tt.min,
				AssociateTimeout: 300 * time.Millisecond,
			})
			if c.joined != nil {
				t.Error("left associated")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Mbps <= 0 || res.Bytes <= 0 || res.SignalDBm != -30 || res.FrequencyMHz != 2412 || !nw.released {
				t.Fatalf("result %+v released %v", res, nw.released)
			}
		})
	}
}

// slowScanner is a kernel whose full scan takes long (every channel of every band) but
// hears the AP early in it, as the first channel scanned is the line AP's.
type slowScanner struct {
	fakeClient
	full    time.Duration
	heardAt time.Duration
	started time.Time
	gotSSID string
	aborted bool
}

func (s *slowScanner) ScanSSID(ctx context.Context, _ *mwifi.Interface, ssid string) error {
	s.mu.Lock()
	s.scans++
	s.started, s.gotSSID = time.Now(), ssid
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.full):
	}
	return nil
}

func (s *slowScanner) AccessPoints(*mwifi.Interface) ([]*mwifi.BSS, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started.IsZero() || time.Since(s.started) < s.heardAt {
		return nil, nil
	}
	return s.aps, nil
}

func (s *slowScanner) AbortScan(*mwifi.Interface) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborted = true
	return nil
}

func TestScanEndsAsSoonAsHeard(t *testing.T) {
	tests := []struct {
		name        string
		min         *int
		wantFound   bool
		wantAborted bool
		maxTime     time.Duration
	}{
		{"heard early: abort the rest of the scan", ip(-70), true, true, time.Second},
		{"too weak: the scan runs to its end", ip(-30), false, false, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &slowScanner{full: 3 * time.Second, heardAt: 50 * time.Millisecond}
			s.ifis = []*mwifi.Interface{sta}
			s.aps = []*mwifi.BSS{bss("LINE-TEST", -47, 2412)}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			start := time.Now()
			res, err := Scan(ctx, s, &fakeLinks{}, ScanRequest{SSID: "LINE-TEST", MinSignalDBm: tt.min})
			took := time.Since(start)
			if (err == nil) != tt.wantFound {
				t.Fatalf("err = %v", err)
			}
			if took > tt.maxTime {
				t.Errorf("scan took %s", took)
			}
			if s.aborted != tt.wantAborted || s.gotSSID != "LINE-TEST" {
				t.Errorf("aborted %v ssid %q", s.aborted, s.gotSSID)
			}
			if tt.wantFound && (res.Scans != 1 || res.Elapsed <= 0 || res.Elapsed > tt.maxTime) {
				t.Errorf("result %+v", res)
			}
			if !tt.wantFound && res.Scans < 2 {
				// The 3 s scan ran to its end, then a second began before the deadline.
				t.Errorf("scans %d, want the first scan to run to its end", res.Scans)
			}
		})
	}
}
