package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

type fixture struct {
	root  string
	files map[string][]byte
	srv   *Server
}

// startServer serves a temporary root with a few files on loopback until the
// test ends.
func startServer(t testing.TB, cfg Config, virtual VirtualFunc) *fixture {
	t.Helper()
	f := &fixture{root: t.TempDir(), files: map[string][]byte{
		"pxelinux.0":        randomBytes(46_000, 1),
		"ldlinux.c32":       randomBytes(120_000, 2),
		"exact1024":         randomBytes(1024, 3),
		"empty":             {},
		"big":               randomBytes(3<<20, 4),
		"medium":            randomBytes(512<<10, 6),
		"syslinux.efi":      randomBytes(171456, 7),
		"text.txt":          []byte("line one\nline two\r\nbare\rcr\n"),
		"sub/dir/file.bin":  randomBytes(700, 5),
		"pxelinux.cfg/hard": []byte("DEFAULT from-disk\n"),
	}}
	for name, b := range f.files {
		p := filepath.Join(f.root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	cfg.Root = f.root
	srv, err := New(cfg, Deps{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})), Virtual: virtual})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return f
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func opts(kv ...string) []option {
	var o []option
	for i := 0; i+1 < len(kv); i += 2 {
		o = append(o, option{kv[i], kv[i+1]})
	}
	return o
}

func TestRead(t *testing.T) {
	f := startServer(t, Config{}, nil)
	tests := []struct {
		name     string
		file     string
		want     string // key in f.files; defaults to file
		client   testClient
		wantOACK map[string]string
	}{
		{name: "plain RFC 1350", file: "pxelinux.0"},
		{name: "leading slash", file: "/pxelinux.0", want: "pxelinux.0"},
		{name: "backslashes", file: `sub\dir\file.bin`, want: "sub/dir/file.bin"},
		{name: "root prefix", file: "ROOT/ldlinux.c32", want: "ldlinux.c32"},
		{name: "exact multiple of block size", file: "exact1024"},
		{name: "empty file", file: "empty"},
		{name: "blksize 1468 and tsize", file: "ldlinux.c32",
			client:   testClient{options: opts("blksize", "1468", "tsize", "0")},
			wantOACK: map[string]string{"blksize": "1468", "tsize": "120000"}},
		{name: "blksize above maximum is clamped", file: "ldlinux.c32",
			client:   testClient{options: opts("blksize", "99999")},
			wantOACK: map[string]string{"blksize": "65464"}},
		{name: "tiny blksize", file: "sub/dir/file.bin",
			client:   testClient{options: opts("blksize", "8")},
			wantOACK: map[string]string{"blksize": "8"}},
		{name: "option names are case-insensitive", file: "pxelinux.0",
			client:   testClient{options: opts("BLKSIZE", "1024", "TSize", "0")},
			wantOACK: map[string]string{"blksize": "1024", "tsize": "46000"}},
		{name: "unknown and invalid options are ignored", file: "pxelinux.0",
			client: testClient{options: opts("multicast", "", "blksize", "4", "timeout", "0")}},
		{name: "timeout option", file: "pxelinux.0",
			client:   testClient{options: opts("timeout", "3")},
			wantOACK: map[string]string{"timeout": "3"}},
		{name: "windowsize", file: "big",
			client:   testClient{options: opts("blksize", "1428", "windowsize", "8")},
			wantOACK: map[string]string{"blksize": "1428", "windowsize": "8"}},
		{name: "windowsize clamped", file: "ldlinux.c32",
			client:   testClient{options: opts("windowsize", "1000")},
			wantOACK: map[string]string{"windowsize": "16"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := strings.Replace(tt.file, "ROOT", f.root, 1)
			want := tt.want
			if want == "" {
				want = tt.file
			}
			res, err := tt.client.get(t, f.srv.Addr(), file)
			if err != nil {
				t.Fatalf("get %s: %v", file, err)
			}
			if !bytes.Equal(res.data, f.files[want]) {
				t.Errorf("got %d bytes, want the %d bytes of %s", len(res.data), len(f.files[want]), want)
			}
			if len(tt.wantOACK) == 0 && res.oack != nil {
				t.Errorf("got OACK %v, want none", res.oack)
			}
			for k, v := range tt.wantOACK {
				if res.oack[k] != v {
					t.Errorf("OACK %s = %q, want %q (OACK %v)", k, res.oack[k], v, res.oack)
				}
			}
		})
	}
}

// UEFI firmware asks for the size alone, aborts, then fetches the file.
func TestSizeQueryThenFetch(t *testing.T) {
	f := startServer(t, Config{}, nil)
	res, err := testClient{sizeOnly: true, options: opts("tsize", "0")}.get(t, f.srv.Addr(), "syslinux.efi")
	if err != nil {
		t.Fatal(err)
	}
	if res.oack["tsize"] != "171456" || len(res.dataPkts) != 0 {
		t.Fatalf("size query: OACK %v, %d data packets", res.oack, len(res.dataPkts))
	}
	res, err = testClient{options: opts("blksize", "1468", "windowsize", "4", "tsize", "0")}.get(t, f.srv.Addr(), "syslinux.efi")
	if err != nil || !bytes.Equal(res.data, f.files["syslinux.efi"]) {
		t.Fatalf("fetch after the size query: %v", err)
	}
}

func TestNetascii(t *testing.T) {
	f := startServer(t, Config{}, nil)
	res, err := testClient{mode: "NetASCII", options: opts("tsize", "0")}.get(t, f.srv.Addr(), "text.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := "line one\r\nline two\r\x00\r\nbare\r\x00cr\r\n"
	if string(res.data) != want {
		t.Errorf("netascii = %q, want %q", res.data, want)
	}
	if _, ok := res.oack["tsize"]; ok {
		t.Error("tsize offered for netascii, whose converted size is unknown")
	}
}

// A lost ACK must make the server send the unacknowledged block again after
// its timeout, and the transfer must still complete intact.
func TestLostAckRetransmits(t *testing.T) {
	f := startServer(t, Config{Timeout: 200 * time.Millisecond}, nil)
	for _, tc := range []struct {
		name   string
		client testClient
		block  uint16
	}{
		{name: "windowsize 1", block: 3},
		{name: "OACK acknowledgement lost", block: 0, client: testClient{options: opts("blksize", "1024")}},
		{name: "windowsize 4", block: 8, client: testClient{options: opts("windowsize", "4")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dropped := 0
			c := tc.client
			c.dropAck = func(b uint16) bool {
				if b == tc.block && dropped == 0 {
					dropped++
					return true
				}
				return false
			}
			start := time.Now()
			res, err := c.get(t, f.srv.Addr(), "pxelinux.0")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.data, f.files["pxelinux.0"]) {
				t.Fatalf("got %d bytes, want %d", len(res.data), len(f.files["pxelinux.0"]))
			}
			if dropped != 1 {
				t.Fatalf("the ACK of block %d was never sent", tc.block)
			}
			// The server never got the ACK, so it must send the
			// acknowledged packet (the OACK for block 0) again.
			got := res.dataPkts[tc.block]
			if tc.block == 0 {
				got = res.oacks
			}
			if got < 2 {
				t.Errorf("block %d arrived %d times, want a retransmission", tc.block, got)
			}
			if d := time.Since(start); d < 200*time.Millisecond {
				t.Errorf("finished in %v, before the retransmission timeout", d)
			}
		})
	}
}

// A client that stops answering must not keep a transfer alive forever.
func TestAbandonedTransferEnds(t *testing.T) {
	f := startServer(t, Config{Timeout: 50 * time.Millisecond, Retries: 2, MaxTransfers: 1}, nil)
	c := testClient{dropAck: func(uint16) bool { return true }, timeout: 500 * time.Millisecond}
	res, err := c.get(t, f.srv.Addr(), "pxelinux.0")
	if err == nil {
		t.Fatal("transfer completed without ACKs")
	}
	if got := res.dataPkts[1]; got != 3 {
		t.Errorf("block 1 sent %d times, want 3 (1 + 2 retries)", got)
	}
	// The only transfer slot must be free again.
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := testClient{}.get(t, f.srv.Addr(), "empty")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transfer slot not released: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBusy(t *testing.T) {
	f := startServer(t, Config{Timeout: time.Second, MaxTransfers: 1}, nil)
	// Hold the only slot with a client that never acknowledges.
	hold := make(chan struct{})
	go func() {
		defer close(hold)
		testClient{dropAck: func(uint16) bool { return true }, timeout: 300 * time.Millisecond}.get(t, f.srv.Addr(), "pxelinux.0")
	}()
	time.Sleep(100 * time.Millisecond)
	_, err := testClient{}.get(t, f.srv.Addr(), "empty")
	var te *tftpError
	if !errors.As(err, &te) || te.code != errNotDefined || !strings.Contains(te.msg, "busy") {
		t.Errorf("second transfer: %v, want a busy error", err)
	}
	<-hold
}

func TestRefused(t *testing.T) {
	f := startServer(t, Config{}, nil)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(f.root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(f.root, "escapedir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../"+filepath.Base(outside)+"/secret", filepath.Join(f.root, "relescape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("pxelinux.0", filepath.Join(f.root, "inside")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string
		code uint16
	}{
		{"dotdot", "../" + filepath.Base(outside) + "/secret", errAccessViolation},
		{"nested dotdot", "pxelinux.cfg/../../etc/passwd", errAccessViolation},
		{"dotdot that stays inside", "sub/../pxelinux.0", errAccessViolation},
		{"backslash dotdot", `..\..\etc\passwd`, errAccessViolation},
		{"absolute outside root", "/etc/passwd", errFileNotFound},
		{"absolute path of the outside file", filepath.Join(outside, "secret"), errFileNotFound},
		{"symlink escaping root", "escape", errAccessViolation},
		{"relative symlink escaping root", "relescape", errAccessViolation},
		{"through a symlinked directory", "escapedir/secret", errAccessViolation},
		{"directory", "sub", errAccessViolation},
		{"root itself", "/", errAccessViolation},
		{"missing", "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", errFileNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := testClient{}.get(t, f.srv.Addr(), tt.file)
			var te *tftpError
			if !errors.As(err, &te) {
				t.Fatalf("get %q: got %d bytes, err %v; want TFTP error %d", tt.file, len(res.data), err, tt.code)
			}
			if te.code != tt.code {
				t.Errorf("get %q: error %d %q, want code %d", tt.file, te.code, te.msg, tt.code)
			}
		})
	}
	// A symlink that stays inside the root is fine.
	res, err := testClient{}.get(t, f.srv.Addr(), "inside")
	if err != nil || !bytes.Equal(res.data, f.files["pxelinux.0"]) {
		t.Errorf("symlink inside root: %v", err)
	}
}

func TestWriteRequestRefused(t *testing.T) {
	f := startServer(t, Config{}, nil)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteToUDPAddrPort([]byte("\x00\x02upload.bin\x00octet\x00"), f.srv.Addr())
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 600)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 || buf[1] != byte(opERROR) || buf[3] != byte(errAccessViolation) {
		t.Fatalf("reply to WRQ = %q, want an access violation error", buf[:n])
	}
	if _, err := os.Stat(filepath.Join(f.root, "upload.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a WRQ created a file")
	}
}

// Malformed packets are dropped and the server keeps serving.
func TestMalformedDropped(t *testing.T) {
	f := startServer(t, Config{}, nil)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, p := range []string{"", "\x00", "\x00\x01", "\x00\x01name", "\x00\x01name\x00", "\x00\x01name\x00bogus\x00",
		"\x00\x01\x00octet\x00", "\x00\x03\x00\x01data", "\x00\x04\x00\x01", "\xff\xff\x00\x00", "\x00\x01a\x00octet\x00blksize\x00"} {
		conn.WriteToUDPAddrPort([]byte(p), f.srv.Addr())
	}
	res, err := testClient{}.get(t, f.srv.Addr(), "pxelinux.0")
	if err != nil || !bytes.Equal(res.data, f.files["pxelinux.0"]) {
		t.Fatalf("server broken after malformed packets: %v", err)
	}
}

func TestVirtualFiles(t *testing.T) {
	var asked []string
	var mu sync.Mutex
	virtual := func(ctx context.Context, name string) ([]byte, error) {
		mu.Lock()
		asked = append(asked, name)
		mu.Unlock()
		switch {
		case strings.HasPrefix(name, "pxelinux.cfg/01-"):
			return []byte("DEFAULT generated " + name + "\n"), nil
		case name == "broken":
			return nil, errors.New("database down")
		}
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	f := startServer(t, Config{}, virtual)
	res, err := testClient{options: opts("tsize", "0")}.get(t, f.srv.Addr(), "/pxelinux.cfg/01-52-54-00-12-34-56")
	if err != nil {
		t.Fatal(err)
	}
	if want := "DEFAULT generated pxelinux.cfg/01-52-54-00-12-34-56\n"; string(res.data) != want {
		t.Errorf("virtual file = %q, want %q", res.data, want)
	}
	if res.oack["tsize"] != fmt.Sprint(len(res.data)) {
		t.Errorf("tsize of virtual file = %q, want %d", res.oack["tsize"], len(res.data))
	}
	// Not provided by the callback: falls through to the root.
	res, err = testClient{}.get(t, f.srv.Addr(), "pxelinux.cfg/hard")
	if err != nil || string(res.data) != "DEFAULT from-disk\n" {
		t.Errorf("fall-through to root: %q, %v", res.data, err)
	}
	_, err = testClient{}.get(t, f.srv.Addr(), "broken")
	var te *tftpError
	if !errors.As(err, &te) || te.code != errNotDefined {
		t.Errorf("failing callback: %v, want error 0", err)
	}
	// Unsafe names never reach the callback.
	testClient{}.get(t, f.srv.Addr(), "../pxelinux.cfg/01-x")
	mu.Lock()
	defer mu.Unlock()
	for _, a := range asked {
		if strings.Contains(a, "..") || strings.HasPrefix(a, "/") {
			t.Errorf("callback saw unsafe name %q", a)
		}
	}
}

func TestConcurrentTransfers(t *testing.T) {
	f := startServer(t, Config{}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each its own host: one address holds at most MaxPerClient transfers.
			c := testClient{local: net.IPv4(127, 0, 1, byte(1+i))}
			if i%2 == 0 {
				c.options = opts("blksize", "1468", "windowsize", "4")
			}
			res, err := c.get(t, f.srv.Addr(), "medium")
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(res.data, f.files["medium"]) {
				errs <- fmt.Errorf("client %d: corrupted data", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Files past 65535 blocks need the block number to wrap around.
func TestBlockNumberRollover(t *testing.T) {
	f := startServer(t, Config{}, nil)
	// 3 MiB at blksize 48 is 65536 full blocks and an empty one.
	res, err := testClient{options: opts("blksize", "48", "windowsize", "16")}.get(t, f.srv.Addr(), "big")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.data, f.files["big"]) {
		t.Fatalf("got %d bytes, want %d", len(res.data), len(f.files["big"]))
	}
	if res.dataPkts[0] == 0 {
		t.Error("block number never wrapped to 0")
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	srv, err := New(Config{ListenAddr: "127.0.0.1:0", Root: t.TempDir()}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	// The port is free again.
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(srv.Addr()))
	if err != nil {
		t.Fatalf("port still bound after Serve returned: %v", err)
	}
	c.Close()
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Error("New without ListenAddr succeeded")
	}
	if _, err := New(Config{ListenAddr: "127.0.0.1:0", Root: "/nonexistent/flashline"}, Deps{}); err == nil {
		t.Error("New with a missing root succeeded")
	}
}

// Interop: curl's TFTP client fetches from our server.
func TestCurlInterop(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	f := startServer(t, Config{}, nil)
	for _, args := range [][]string{nil, {"--tftp-blksize", "1468"}, {"--tftp-no-options"}} {
		out := filepath.Join(t.TempDir(), "out")
		url := fmt.Sprintf("tftp://%s/pxelinux.0", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), f.srv.Addr().Port()))
		cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "20", "-o", out}, append(args, url)...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, b)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.files["pxelinux.0"]) {
			t.Errorf("curl %v: got %d bytes, want %d", args, len(got), len(f.files["pxelinux.0"]))
		}
	}
}

// Interop: tftp-hpa's client, when installed.
func TestTFTPHPAInterop(t *testing.T) {
	tftp, err := exec.LookPath("tftp")
	if err != nil {
		t.Skip("tftp-hpa client not installed (apt-get install tftp-hpa)")
	}
	f := startServer(t, Config{}, nil)
	dir := t.TempDir()
	cmd := exec.Command(tftp, "-m", "binary", "127.0.0.1", fmt.Sprint(f.srv.Addr().Port()), "-c", "get", "ldlinux.c32")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tftp: %v\n%s", err, b)
	}
	got, err := os.ReadFile(filepath.Join(dir, "ldlinux.c32"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.files["ldlinux.c32"]) {
		t.Errorf("tftp-hpa: got %d bytes, want %d", len(got), len(f.files["ldlinux.c32"]))
	}
}

// BenchmarkRead measures a whole transfer of a 3 MiB file over loopback with
// the block sizes PXE firmware uses, with and without a window.
func BenchmarkRead(b *testing.B) {
	f := startServer(b, Config{}, nil)
	for _, bc := range []struct {
		name string
		opts []option
	}{
		{"blksize512", nil},
		{"blksize1408", opts("blksize", "1408")},
		{"blksize1468-window8", opts("blksize", "1468", "windowsize", "8")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(f.files["big"])))
			for b.Loop() {
				if _, err := (testClient{options: bc.opts}).get(b, f.srv.Addr(), "big"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
