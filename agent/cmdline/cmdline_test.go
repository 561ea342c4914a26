package cmdline

import (
	"net"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	tests := []struct {
		name    string
		in      string
		want    Params
		wantErr string
	}{
		{
			name: "pxelinux line",
			in:   "initrd=initrd.gz console=ttyS0,115200 flashline.server=http://10.0.2.2:8080/ BOOTIF=01-52-54-00-12-34-56\n",
			want: Params{Server: "http://10.0.2.2:8080", BootIF: mac},
		},
		{
			name: "debug flag and modules",
			in:   "flashline.debug flashline.modules=mac80211_hwsim,,hci_vhci flashline.iface=eth1",
			want: Params{Debug: true, Modules: []string{"mac80211_hwsim", "hci_vhci"}, Iface: "eth1"},
		},
		{
			name: "dash equals underscore",
			in:   "flashline.nomodules=1 flashline.debug=0",
			want: Params{NoModules: true},
		},
		{
			name:    "quoted value",
			in:      `flashline.server="https://line.example/api base" "flashline.iface=eth0"`,
			wantErr: "flashline.server",
			want:    Params{Iface: "eth0"},
		},
		{
			name: "https with path",
			in:   "flashline.server=https://line.example:8443/flashline/",
			want: Params{Server: "https://line.example:8443/flashline"},
		},
		{
			name:    "bad values are reported and skipped",
			in:      "flashline.server=ftp://x BOOTIF=06-aa-bb-cc-dd-ee-ff flashline.debug=maybe flashline.modules=ok,b/ad flashline.iface=a/b",
			want:    Params{Modules: []string{"ok"}},
			wantErr: "ftp",
		},
		{
			name: "after -- belongs to init",
			in:   "BOOTIF=52:54:00:12:34:56 -- flashline.debug",
			want: Params{BootIF: mac},
		},
		{name: "empty", in: "", want: Params{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v does not mention %q", err, tt.wantErr)
			}
			got.Raw = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseBootIF(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"01-aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:ff"},
		{"01-AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"},
		{"aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:ff"},
		{"aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"},
		{"01-aa-bb-cc-dd-ee", ""},
		{"02-aa-bb-cc-dd-ee-ff", ""},
		{"01--aa-bb-cc-dd-ee", ""},
		{"01-aa-bb-cc-dd-ee-fff", ""},
		{"01-aa-bb-cc-dd-ee-+f", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := ParseBootIF(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseBootIF(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseBootIF(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a b\tc\n", []string{"a", "b", "c"}},
		{`a="x y" "b=c d" e`, []string{"a=x y", "b=c d", "e"}},
		{`a="" b`, []string{"a=", "b"}},
		{`""`, []string{""}},
		{"a -- b", []string{"a"}},
		{`unterminated="x y`, []string{"unterminated=x y"}},
	}
	for _, tt := range tests {
		if got := Split(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFlagAndModuleParams(t *testing.T) {
	p, err := Parse("virtio-net.napi_tx=1 virtio_net.csum=0 e1000.debug=16 quiet")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := p.Flag("virtio_net.napi_tx"); !ok || v != "1" {
		t.Errorf("Flag(virtio_net.napi_tx) = %q, %v", v, ok)
	}
	if v, ok := p.Flag("quiet"); !ok || v != "1" {
		t.Errorf("Flag(quiet) = %q, %v", v, ok)
	}
	if _, ok := p.Flag("missing"); ok {
		t.Error("Flag(missing) found")
	}
	got := strings.Fields(p.ModuleParams("virtio-net"))
	if len(got) != 2 || !(got[0] == "napi_tx=1" && got[1] == "csum=0" || got[1] == "napi_tx=1" && got[0] == "csum=0") {
		t.Errorf("ModuleParams(virtio-net) = %q", got)
	}
	if got := p.ModuleParams("e1000e"); got != "" {
		t.Errorf("ModuleParams(e1000e) = %q, want none", got)
	}
}

func TestParseServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://10.0.2.2:8080":     "http://10.0.2.2:8080",
		"http://10.0.2.2:8080///":  "http://10.0.2.2:8080",
		"https://[fd00::1]:443/x/": "https://[fd00::1]:443/x",
		"http://":                  "",
		"10.0.2.2:8080":            "",
		"http://u:p@host":          "",
		"http://host/?a=b":         "",
		"http://h%zz":              "",
	} {
		got, err := ParseServerURL(in)
		if want == "" {
			if err == nil {
				t.Errorf("ParseServerURL(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseServerURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"initrd=initrd.gz BOOTIF=01-52-54-00-12-34-56 flashline.server=http://10.0.2.2:8080",
		`flashline.debug "a=b c" -- x`,
		"flashline.modules=a,b,,c flashline.iface=eth0",
		`"`, "=", "BOOTIF=", "flashline.server=http://[::1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, _ := Parse(s)
		if p.Raw == nil {
			t.Fatal("nil Raw map")
		}
		if p.BootIF != nil && len(p.BootIF) != 6 {
			t.Fatalf("BootIF %v is not 6 bytes", p.BootIF)
		}
		if p.Server != "" {
			if _, err := ParseServerURL(p.Server); err != nil {
				t.Fatalf("accepted server %q does not re-parse: %v", p.Server, err)
			}
		}
		for _, m := range p.Modules {
			if !validModuleName(m) {
				t.Fatalf("accepted module name %q", m)
			}
		}
		for _, tok := range Split(s) {
			if tok == "--" {
				t.Fatalf("Split kept the -- terminator")
			}
		}
	})
}
