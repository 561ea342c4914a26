package kmod

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const root = "testdata/root"

func TestScanModaliases(t *testing.T) {
	got, err := ScanModaliases(filepath.Join(root, "sys/devices"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"acpi:LNXPWRBN:",
		"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
		"pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30",
		"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
		"platform:serial8250",
		"usb:v2C7Cp0125d0318dc00dsc00dp00icFFiscFFipFFin00",
		"virtio:d00000001v00001AF4",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if _, err := ScanModaliases(filepath.Join(root, "missing")); err == nil {
		t.Error("scanning a missing directory did not fail")
	}
}

func TestAliasMatch(t *testing.T) {
	l := &Loader{Root: root, KVer: "test"}
	a, err := l.Aliases()
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 11 {
		t.Errorf("parsed %d aliases, want 11 (comment and bad pattern skipped)", a.Len())
	}
	tests := []struct {
		modalias string
		want     []string
	}{
		{"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", []string{"virtio_pci"}},
		{"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", []string{"e1000"}},
		{"pci:v00008086d0000100Fsv00001AF4sd00001100bc02sc00i00", nil},
		{"pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30", []string{"xhci_pci"}},
		{"usb:v2C7Cp0125d0318dc00dsc00dp00icFFiscFFipFFin00", []string{"option"}}, // two patterns, one module
		{"usb:v2C7Cp0125d0318dc00dsc00dp00ic02isc02ip00in02", nil},
		{"acpi:LNXPWRBN:", []string{"button"}}, // pattern with a wildcard in the bus part
		{"input:b0019v0000p0001e0000-e0,1,k74,ramlsfw", []string{"evdev"}},
		{"virtio:d00000001v00001AF4", []string{"virtio_net"}},
		{"", nil},
		{"nocolon", nil},
	}
	for _, tt := range tests {
		got := a.Match(tt.modalias)
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Match(%q) = %q, want %q", tt.modalias, got, tt.want)
		}
	}
}

// loadedFiles runs f with a dry-run loader over the test tree and returns the module files it
// would have loaded, in order.
func dryLoader(files *[]string) *Loader {
	return &Loader{
		Root:   root,
		KVer:   "test",
		Settle: time.Millisecond,
		DryRun: func(p string) {
			*files = append(*files, strings.TrimPrefix(p, filepath.Join(root, "lib/modules/test")+"/"))
		},
	}
}

func TestLoadWithDependencies(t *testing.T) {
	var files []string
	l := dryLoader(&files)
	if err := l.Load(context.Background(), "mac80211-hwsim"); err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/net/wireless/cfg80211.ko", "kernel/net/mac80211/mac80211.ko", "kernel/drivers/net/wireless/virtual/mac80211_hwsim.ko"}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("loaded %q, want %q", files, want)
	}
	err := l.Load(context.Background(), "virtio_net", "no_such_module")
	if err == nil || !strings.Contains(err.Error(), "load module no_such_module") {
		t.Errorf("Load of a missing module: err = %v", err)
	}
	if !slices.Contains(files, "kernel/drivers/net/virtio_net.ko") {
		t.Errorf("virtio_net not loaded next to the missing module: %q", files)
	}
}

// before reports whether a comes before b in s (both present).
func before(s []string, a, b string) bool {
	i, j := slices.Index(s, a), slices.Index(s, b)
	return i >= 0 && j >= 0 && i < j
}

func TestProbeRescansAfterLoading(t *testing.T) {
	var files []string
	l := dryLoader(&files)
	// Round 1 sees the PCI devices only; once virtio_pci and xhci_pci are "loaded", the
	// virtio NIC and the USB modem show up, as they would in sysfs.
	l.Modaliases = func() ([]string, error) {
		mas := []string{
			"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
			"pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30",
			"acpi:LNXPWRBN:",
		}
		if slices.Contains(files, "kernel/drivers/usb/host/xhci-pci.ko") {
			mas = append(mas, "usb:v2C7Cp0125d0318dc00dsc00dp00icFFiscFFipFFin00", "virtio:d00000002v00001AF4")
		}
		return mas, nil
	}
	var progress []string
	l.Progress = func(m string, err error) { progress = append(progress, m) }
	l.Skip = []string{"button"}
	rep, err := l.Probe(context.Background(), "mac80211_hwsim")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rounds != 2 {
		t.Errorf("rounds = %d, want 2", rep.Rounds)
	}
	for _, f := range []string{
		"kernel/drivers/usb/serial/option.ko", "kernel/drivers/block/virtio_blk.ko",
		"kernel/drivers/net/wireless/virtual/mac80211_hwsim.ko", "kernel/drivers/scsi/sd_mod.ko",
	} {
		if !slices.Contains(files, f) {
			t.Errorf("%s not loaded; loaded %q", f, files)
		}
	}
	if slices.Contains(files, "kernel/drivers/acpi/button.ko") {
		t.Error("skipped module button was loaded")
	}
	// Dependencies come first.
	for _, p := range [][2]string{
		{"kernel/drivers/usb/serial/usbserial.ko", "kernel/drivers/usb/serial/option.ko"},
		{"kernel/drivers/usb/host/xhci-hcd.ko", "kernel/drivers/usb/host/xhci-pci.ko"},
		{"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko"},
	} {
		if !before(files, p[0], p[1]) {
			t.Errorf("%s not loaded before %s: %q", p[0], p[1], files)
		}
	}
	// Each module is probed once even though it matches in every round.
	seen := map[string]int{}
	for _, m := range progress {
		seen[m]++
		if seen[m] > 1 {
			t.Errorf("module %s probed %d times", m, seen[m])
		}
	}
	// The always-load list is tried even where nothing matches; e1000 matches no device here
	// but is in the tree, so loading it is a success.
	if !slices.Contains(progress, "e1000") || !slices.Contains(progress, "evdev") {
		t.Errorf("always-load modules missing from %q", progress)
	}
}

func TestProbeFromSysfsTree(t *testing.T) {
	var files []string
	l := dryLoader(&files)
	rep, err := l.Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Devices != 7 {
		t.Errorf("devices = %d, want 7", rep.Devices)
	}
	for _, m := range []string{"virtio_pci", "virtio_net", "e1000", "xhci_pci", "option", "button"} {
		if !slices.Contains(rep.Loaded, strings.ReplaceAll(m, "_pci", "-pci")) && !slices.Contains(rep.Loaded, m) {
			t.Errorf("%s not in loaded %q", m, rep.Loaded)
		}
	}
	if len(rep.Failed) != 0 {
		t.Errorf("failures: %v", rep.Failed)
	}
}

func TestProbeStopsOnCancel(t *testing.T) {
	var files []string
	l := dryLoader(&files)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Probe(ctx); err == nil {
		t.Error("Probe with a cancelled context succeeded")
	}
}

func TestMissingAliasFile(t *testing.T) {
	l := &Loader{Root: t.TempDir(), KVer: "none"}
	if _, err := l.Probe(context.Background()); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("err = %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzAliases(f *testing.F) {
	f.Add("alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	f.Add("alias acpi*:LNXPWRBN:* button\nalias [ x\n", "acpi:LNXPWRBN:")
	f.Add("alias usb:v*p*d*dc*dsc*dp*ic[0-9]* m\n", "usb:v1p2d3dc4dsc5dp6ic7")
	f.Fuzz(func(t *testing.T, file, modalias string) {
		a, err := ParseAliases(strings.NewReader(file))
		if err != nil {
			return
		}
		got := a.Match(modalias)
		if !slices.IsSorted(got) {
			t.Fatalf("unsorted %q", got)
		}
		// Matching through the index must agree with trying every pattern.
		var want []string
		for _, al := range a.list {
			if ok, _ := filepath.Match(al.Pattern, modalias); ok && !slices.Contains(want, al.Module) && !strings.Contains(modalias, "/") {
				want = append(want, al.Module)
			}
		}
		slices.Sort(want)
		if !strings.Contains(modalias, "/") && !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("Match(%q) = %q, brute force %q", modalias, got, want)
		}
	})
}
