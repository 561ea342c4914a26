package pxecfg

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeState is a map from MAC to mode; errMAC fails.
type fakeState struct {
	modes  map[string]Mode
	errMAC string
}

func (f fakeState) BootMode(_ context.Context, mac net.HardwareAddr) (Mode, error) {
	if mac.String() == f.errMAC {
		return Unknown, errors.New("database is locked")
	}
	return f.modes[mac.String()], nil
}

var state = fakeState{
	modes: map[string]Mode{
		"52:54:00:00:00:01": Provision,
		"52:54:00:00:00:02": LocalBoot,
		"52:54:00:00:00:0a": Provision,
	},
	errMAC: "52:54:00:00:00:ee",
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestTFTPFile(t *testing.T) {
	tftpCfg := Config{ServerURL: "http://10.77.0.1:8080", SerialPort: "0 115200"}
	httpCfg := Config{
		ServerURL:   "http://10.77.0.1:8080/",
		HTTPBase:    "http://10.77.0.1:8080/boot",
		Consoles:    []string{"ttyS1,9600"},
		ExtraArgs:   []string{"quiet", "flashline.debug=1"},
		Kernel:      "/vmlinuz-6.1",
		Initrd:      "http://images.example/initrd.zst",
		ErrorMode:   Provision,
		DefaultMode: LocalBoot,
	}
	tests := []struct {
		name   string
		cfg    Config
		file   string
		golden string
		err    error
	}{
		{name: "provision", cfg: tftpCfg, file: "pxelinux.cfg/01-52-54-00-00-00-01", golden: "provision.cfg"},
		{name: "upper-case MAC", cfg: tftpCfg, file: "pxelinux.cfg/01-52-54-00-00-00-0A", golden: "provision-0a.cfg"},
		{name: "provisioned device boots local", cfg: tftpCfg, file: "pxelinux.cfg/01-52-54-00-00-00-02", golden: "localboot.cfg"},
		{name: "unknown device gets the default mode", cfg: tftpCfg, file: "pxelinux.cfg/01-52-54-00-00-00-03", golden: "unknown.cfg"},
		{name: "store failure boots local", cfg: tftpCfg, file: "pxelinux.cfg/01-52-54-00-00-00-ee", golden: "store-failure.cfg"},
		{name: "default file", cfg: tftpCfg, file: "pxelinux.cfg/default", golden: "default.cfg"},
		{name: "subdirectory prefix, provisioned device", cfg: tftpCfg, file: "efi64/pxelinux.cfg/01-52-54-00-00-00-02", golden: "localboot.cfg"},
		{name: "lpxelinux over HTTP", cfg: httpCfg, file: "pxelinux.cfg/01-52-54-00-00-00-01", golden: "http.cfg"},
		{name: "HTTP config, unknown device", cfg: httpCfg, file: "pxelinux.cfg/default", golden: "http-default.cfg"},
		{name: "HTTP config, store failure provisions", cfg: httpCfg, file: "pxelinux.cfg/01-52-54-00-00-00-ee", golden: "http-store-failure.cfg"},
		{name: "UUID name is not ours", cfg: tftpCfg, file: "pxelinux.cfg/b8945908-d6a6-41a9-611d-74a6ab80b83d", err: fs.ErrNotExist},
		{name: "hex IP name is not ours", cfg: tftpCfg, file: "pxelinux.cfg/0A4D0002", err: fs.ErrNotExist},
		{name: "other hardware type", cfg: tftpCfg, file: "pxelinux.cfg/06-52-54-00-00-00-01", err: fs.ErrNotExist},
		{name: "not a config file", cfg: tftpCfg, file: "pxelinux.0", err: fs.ErrNotExist},
		{name: "not in pxelinux.cfg", cfg: tftpCfg, file: "boot/01-52-54-00-00-00-01", err: fs.ErrNotExist},
		{name: "lookalike directory", cfg: tftpCfg, file: "xpxelinux.cfg/default", err: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(tt.cfg, Deps{State: state})
			if err != nil {
				t.Fatal(err)
			}
			file := tt.file
			got, err := g.TFTPFile(context.Background(), file)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("TFTPFile(%q) = %q, %v; want %v", file, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, got)
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		deps Deps
	}{
		{"no state", Config{ServerURL: "http://x"}, Deps{}},
		{"no server URL", Config{}, Deps{State: state}},
		{"not http", Config{ServerURL: "tftp://x"}, Deps{State: state}},
		{"newline injection", Config{ServerURL: "http://x", ExtraArgs: []string{"a\nLABEL evil"}}, Deps{State: state}},
	} {
		if _, err := New(tc.cfg, tc.deps); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

func TestConfigNameRoundTrip(t *testing.T) {
	mac := net.HardwareAddr{0xaa, 0xBB, 0xcc, 0x01, 0x02, 0x03}
	name := ConfigName(mac)
	if name != "pxelinux.cfg/01-aa-bb-cc-01-02-03" {
		t.Fatalf("ConfigName = %q", name)
	}
	got, ok := ParseConfigName(strings.TrimPrefix(name, "pxelinux.cfg/"))
	if !ok || !bytes.Equal(got, mac) {
		t.Fatalf("ParseConfigName(%q) = %v, %v", name, got, ok)
	}
}

func FuzzParseConfigName(f *testing.F) {
	f.Add("01-aa-bb-cc-dd-ee-ff")
	f.Add("01-AA-BB-CC-DD-EE-FF")
	f.Add("01-aa:bb:cc:dd:ee:ff")
	f.Fuzz(func(t *testing.T, s string) {
		mac, ok := ParseConfigName(s)
		if !ok {
			return
		}
		if len(mac) != 6 {
			t.Fatalf("%q parsed to %d bytes", s, len(mac))
		}
	})
}
