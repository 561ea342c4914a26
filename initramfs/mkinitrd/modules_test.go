package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/u-root/mkuimage/cpio"
)

const testTree = "testdata/modules/test"

func TestBuildModuleSet(t *testing.T) {
	set, err := buildModuleSet(testTree, []string{"virtio-net", "mac80211_hwsim", "builtin_thing", "not_here"})
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"cfg80211", "failover", "mac80211", "mac80211_hwsim", "net_failover", "virtio", "virtio_net"}
	if !reflect.DeepEqual(set.names, wantNames) {
		t.Errorf("names %q, want %q", set.names, wantNames)
	}
	if !reflect.DeepEqual(set.missing, []string{"not_here"}) {
		t.Errorf("missing %q: built-in modules are not missing", set.missing)
	}
	files := map[string]moduleFile{}
	for _, f := range set.files {
		files[f.rel] = f
	}
	if _, ok := files["kernel/b/unused.ko"]; ok {
		t.Error("unused module copied")
	}
	if f := files["kernel/a/virtio_net.ko"]; f.src != filepath.Join(testTree, "kernel/a/virtio_net.ko") {
		t.Errorf("virtio_net source %q", f.src)
	}
	dep := files["modules.dep"].content
	for _, want := range []string{
		"kernel/a/virtio_net.ko: kernel/a/net_failover.ko kernel/a/failover.ko kernel/b/virtio.ko\n",
		"kernel/a/failover.ko:\n",
		"kernel/a/mac80211_hwsim.ko: kernel/a/mac80211.ko kernel/a/cfg80211.ko\n",
	} {
		if !strings.Contains(dep, want) {
			t.Errorf("modules.dep lacks %q:\n%s", want, dep)
		}
	}
	if strings.Contains(dep, "unused") || strings.Contains(dep, "iwlwifi") || strings.Contains(dep, "virtio_pci") {
		t.Errorf("modules.dep not trimmed:\n%s", dep)
	}
	if alias := files["modules.alias"].content; alias != "alias virtio:d00000001v* virtio_net\n" {
		t.Errorf("modules.alias = %q", alias)
	}
	if !strings.Contains(files["modules.builtin"].content, "usbcore.ko") {
		t.Error("modules.builtin not kept")
	}
	if set.bytes == 0 {
		t.Error("no byte count")
	}
}

func TestSelectModules(t *testing.T) {
	groups := []moduleGroup{
		{name: "a", modules: []string{"virtio_net", "e1000"}},
		{name: "fw", needsFirmware: true, modules: []string{"iwlwifi"}},
		{name: "test", testOnly: true, modules: []string{"dummy_hcd", "virtio-net"}},
	}
	tests := []struct {
		fw, test  bool
		add, drop []string
		want      []string
	}{
		{want: []string{"virtio_net", "e1000"}},
		{fw: true, want: []string{"virtio_net", "e1000", "iwlwifi"}},
		{test: true, want: []string{"virtio_net", "e1000", "dummy_hcd"}},
		{add: []string{"hci_vhci", "e1000"}, drop: []string{"virtio-net"}, want: []string{"e1000", "hci_vhci"}},
	}
	for _, tt := range tests {
		if got := selectModules(groups, tt.fw, tt.test, tt.add, tt.drop); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("selectModules(fw=%v test=%v add=%v drop=%v) = %q, want %q", tt.fw, tt.test, tt.add, tt.drop, got, tt.want)
		}
	}
}

func TestDefaultGroupsAreSane(t *testing.T) {
	seen := map[string]string{}
	for _, g := range moduleGroups() {
		for _, m := range g.modules {
			if other, ok := seen[canonical(m)]; ok {
				t.Errorf("module %s in groups %s and %s", m, other, g.name)
			}
			seen[canonical(m)] = g.name
		}
	}
	for _, m := range []string{"virtio_net", "virtio_pci", "virtio_blk", "e1000", "mac80211_hwsim", "hci_vhci", "evdev", "option"} {
		if _, ok := seen[m]; !ok {
			t.Errorf("required module %s not in the list", m)
		}
	}
}

// TestBuildWithDebianTree builds the module set from the real Debian tree when scripts/setup
// has unpacked it: every listed module must exist (or be built in) in the line's kernel.
func TestBuildWithDebianTree(t *testing.T) {
	dirs, _ := filepath.Glob("/var/cache/flashline/kernel/lib/modules/*")
	if len(dirs) == 0 {
		t.Skip("no kernel tree from scripts/setup")
	}
	names := selectModules(moduleGroups(), true, true, nil, nil)
	set, err := buildModuleSet(dirs[len(dirs)-1], names)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.missing) > 0 {
		t.Errorf("listed modules absent from %s: %q", dirs[len(dirs)-1], set.missing)
	}
	for _, m := range []string{"virtio_net", "failover", "cfg80211", "usbserial"} {
		if !slices.Contains(set.names, m) {
			t.Errorf("%s not in the closure", m)
		}
	}
}

func TestCompressedCPIO(t *testing.T) {
	for _, format := range []string{"gzip", "zstd", "xz"} {
		t.Run(format, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "out")
			w, err := compressedCPIO{path: p, format: format}.OpenWriter()
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteRecord(cpio.StaticFile("etc/hello", "hello", 0o644)); err != nil {
				t.Fatal(err)
			}
			if err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			magic := map[string][]byte{"gzip": {0x1f, 0x8b}, "zstd": {0x28, 0xb5, 0x2f, 0xfd}, "xz": {0xfd, '7', 'z', 'X', 'Z'}}[format]
			if !bytes.HasPrefix(b, magic) {
				t.Errorf("output starts % x, want %s magic", b[:min(8, len(b))], format)
			}
		})
	}
	if _, err := (compressedCPIO{path: filepath.Join(t.TempDir(), "x"), format: "lz4"}).OpenWriter(); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/net/virtio_net.ko":    "virtio_net",
		"kernel/drivers/usb/host/xhci-pci.ko": "xhci_pci",
		"kernel/x/y.ko.xz":                    "y",
		"kernel/x/z.ko.zst":                   "z",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
}
