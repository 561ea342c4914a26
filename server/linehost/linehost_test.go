package linehost

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashline/flashline/server/config"
)

// fakeHost has the Debian packages' files in a temporary tree, as dpkg -L lists them.
func fakeHost(t *testing.T) (Options, string) {
	t.Helper()
	root := t.TempDir()
	pkgs := map[string][]string{
		"pxelinux":        {"/usr/lib/PXELINUX/pxelinux.0", "/usr/lib/PXELINUX/lpxelinux.0", "/usr/share/doc/pxelinux"},
		"syslinux-common": {"/usr/lib/syslinux/modules/bios/ldlinux.c32", "/usr/lib/syslinux/modules/efi32/ldlinux.e32", "/usr/lib/syslinux/modules/efi64/ldlinux.e64"},
		"syslinux-efi":    {"/usr/lib/SYSLINUX.EFI/efi32/syslinux.efi", "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi"},
	}
	for _, files := range pkgs {
		for _, f := range files {
			p := filepath.Join(root, f)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte("content of "+f), 0o644)
		}
	}
	for _, f := range []string{"vmlinuz", "initrd.gz"} {
		os.WriteFile(filepath.Join(root, f), []byte(f+" v1"), 0o644)
	}
	o := Options{
		ConfigDir: filepath.Join(root, "etc"), SrvDir: filepath.Join(root, "srv"), DataDir: filepath.Join(root, "data"),
		Kernel: filepath.Join(root, "vmlinuz"), Initrd: filepath.Join(root, "initrd.gz"),
		Packages: func(_ context.Context, pkg string) ([]string, error) {
			fs, ok := pkgs[pkg]
			if !ok {
				return nil, fmt.Errorf("package %s is not installed", pkg)
			}
			var out []string
			for _, f := range fs {
				out = append(out, filepath.Join(root, f))
			}
			return out, nil
		},
		Interfaces: func() ([]Interface, error) {
			return []Interface{
				{Name: "lo", Loop: true, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
				{Name: "enp1s0", Up: true, Router: true, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.7.20/24")}},
			}, nil
		},
	}
	return o, root
}

func whats(acts []Action) map[string]string {
	m := map[string]string{}
	for _, a := range acts {
		m[filepath.Base(a.Path)] = a.What
	}
	return m
}

func TestInitIdempotentAndForce(t *testing.T) {
	o, _ := fakeHost(t)
	acts, err := Init(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	got := whats(acts)
	for _, f := range []string{"pxelinux.0", "lpxelinux.0", "ldlinux.c32", "syslinux.efi", "ldlinux.e64", "vmlinuz", "initrd.gz", "operator.key", "operator.pub", "server.yaml"} {
		if got[f] != "created" {
			t.Errorf("%s: %q, want created", f, got[f])
		}
	}
	// The right one of several files with one name.
	b, _ := os.ReadFile(filepath.Join(o.SrvDir, "tftp", "syslinux.efi"))
	if !strings.Contains(string(b), "efi64") {
		t.Errorf("syslinux.efi is %q, want the efi64 one", b)
	}
	key1, _ := os.ReadFile(filepath.Join(o.ConfigDir, "keys", "operator.key"))

	// The written configuration passes the server's own check on this (fake) host, apart
	// from the interface, which only the fake has.
	_, ps := config.CheckFile(filepath.Join(o.ConfigDir, "server.yaml"), config.CheckOptions{Host: true})
	for _, p := range ps {
		if !strings.Contains(p.Msg, "interface \"enp1s0\"") {
			t.Errorf("written config: %v", p)
		}
	}

	// Again: nothing changes.
	acts, err = Init(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for f, w := range whats(acts) {
		if want := map[bool]string{true: "kept", false: "unchanged"}[f == "operator.key"]; w != want {
			t.Errorf("second run: %s %s, want %s", f, w, want)
		}
	}

	// A new kernel is refused without force, replaced with it; the key stays.
	os.WriteFile(o.Kernel, []byte("vmlinuz v2"), 0o644)
	if _, err := Init(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("changed kernel without force: %v", err)
	}
	o.Force = true
	acts, err = Init(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if w := whats(acts); w["vmlinuz"] != "replaced" || w["pxelinux.0"] != "unchanged" || w["operator.key"] != "kept" {
		t.Errorf("forced run: %v", w)
	}
	if key2, _ := os.ReadFile(filepath.Join(o.ConfigDir, "keys", "operator.key")); string(key1) != string(key2) {
		t.Error("the signing key was replaced")
	}
	if _, err := os.Stat(o.DataDir); !os.IsNotExist(err) {
		t.Error("init created data_dir")
	}
}

func TestInitConfigModes(t *testing.T) {
	o, _ := fakeHost(t)
	o.Mode = "full"
	if _, err := Init(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(o.ConfigDir, "server.yaml"))
	c, err := config.Parse(b)
	if err != nil {
		t.Fatalf("written config: %v\n%s", err, b)
	}
	if c.DHCP.Mode != "full" || c.DHCP.Interface != "enp1s0" || c.DHCP.ServerIP != "192.168.7.20" || c.DHCP.RangeStart != "192.168.7.100" ||
		c.DHCP.RangeEnd != "192.168.7.199" || c.DHCP.Subnet != "192.168.7.0/24" || c.HTTP.PublicURL != "http://192.168.7.20:8080" {
		t.Errorf("full mode: %+v %+v", c.DHCP, c.HTTP)
	}
	o.Mode, o.Force = "proxy", true
	if _, err := Init(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(o.ConfigDir, "server.yaml"))
	if c, err = config.Parse(b); err != nil || c.DHCP.Mode != "proxy" || c.DHCP.RangeStart != "" {
		t.Errorf("proxy mode: %v %+v", err, c.DHCP)
	}
}

func TestPickInterface(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name    string
		ifs     []Interface
		want    string
		wantErr string
		ask     string
	}{
		{"only one", []Interface{{Name: "eth0", Router: true, Addrs: []netip.Prefix{p("10.0.0.2/24")}}}, "eth0", "", ""},
		{"line beside the uplink", []Interface{{Name: "eth0", Router: true, Addrs: []netip.Prefix{p("10.0.0.2/24")}}, {Name: "eth1", Addrs: []netip.Prefix{p("10.77.0.1/24")}}}, "eth1", "", ""},
		{"ambiguous", []Interface{{Name: "eth1", Addrs: []netip.Prefix{p("10.77.0.1/24")}}, {Name: "eth2", Addrs: []netip.Prefix{p("10.78.0.1/24")}}}, "", "choose one with -interface", ""},
		{"asked", []Interface{{Name: "eth1", Addrs: []netip.Prefix{p("10.77.0.1/24")}}, {Name: "eth2", Addrs: []netip.Prefix{p("10.78.0.1/24")}}}, "eth2", "", "eth2"},
		{"asked, absent", []Interface{{Name: "eth1", Addrs: []netip.Prefix{p("10.77.0.1/24")}}}, "", "not found or without an IPv4 address", "wlan0"},
		{"none", []Interface{{Name: "lo", Loop: true, Addrs: []netip.Prefix{p("127.0.0.1/8")}}}, "", "no interface with an IPv4 address", ""},
	}
	for _, tt := range tests {
		c, err := pickInterface(Options{Interface: tt.ask, Interfaces: func() ([]Interface, error) { return tt.ifs, nil }})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || c.Name != tt.want {
			t.Errorf("%s: %v %v, want %s", tt.name, c, err, tt.want)
		}
	}
}

func TestInitMissingPackage(t *testing.T) {
	o, _ := fakeHost(t)
	list := o.Packages
	o.Packages = func(ctx context.Context, pkg string) ([]string, error) {
		if pkg == "syslinux-efi" {
			return nil, fmt.Errorf("package %s is not installed (apt-get install %s)", pkg, pkg)
		}
		return list(ctx, pkg)
	}
	if _, err := Init(context.Background(), o); err == nil || !strings.Contains(err.Error(), "apt-get install syslinux-efi") {
		t.Errorf("err = %v", err)
	}
}

// TestInitReplacesPlaceholder: the package's placeholder server.yaml is replaced without
// --force, anything else is not.
func TestInitReplacesPlaceholder(t *testing.T) {
	o, _ := fakeHost(t)
	cfg := filepath.Join(o.ConfigDir, "server.yaml")
	os.MkdirAll(o.ConfigDir, 0o755)
	os.WriteFile(cfg, []byte(PlaceholderMarker+" (installed by the package).\n"), 0o644)
	acts, err := Init(context.Background(), o)
	if err != nil || whats(acts)["server.yaml"] != "replaced" {
		t.Fatalf("placeholder: %v %v", whats(acts), err)
	}
	os.WriteFile(cfg, []byte("# my own\n"), 0o644)
	if _, err := Init(context.Background(), o); err == nil {
		t.Fatal("an engineer's server.yaml was replaced without --force")
	}
}
