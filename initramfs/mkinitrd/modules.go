package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// moduleGroup is a named set of kernel modules for the initramfs.
type moduleGroup struct {
	name    string
	why     string
	modules []string
	// needsFirmware groups are only useful with firmware blobs (-firmware); without them
	// the drivers load and then fail, so they are left out to keep the image small.
	needsFirmware bool
	// testOnly groups go into test initrds (built with -extra) only.
	testOnly bool
}

// moduleGroups is THE list of kernel modules in the initramfs (the GM-Box variants and the
// line's VMs), each with its dependency closure from modules.dep. Keep it the one place.
// Sizes noted are gzip -9 of the Debian 6.1 modules, for the 8 MiB budget.
func moduleGroups() []moduleGroup {
	return []moduleGroup{
		{name: "virtio", why: "QEMU line VMs: NIC, disks, input, entropy",
			modules: []string{"virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "virtio_input", "virtio_rng"}},
		{name: "ethernet", why: "wired NICs of the boxes and of the VMs (e1000 ~90K, e1000e ~160K, igb ~160K)",
			modules: []string{"e1000", "e1000e", "r8169", "igb"}},
		{name: "storage", why: "flash targets: SATA, NVMe, eMMC/SD, USB sticks",
			modules: []string{"ahci", "nvme", "sd_mod", "mmc_block", "sdhci_pci", "sdhci_acpi", "usb-storage", "uas"}},
		{name: "usb", why: "USB host controllers and HID",
			modules: []string{"xhci_pci", "ehci_pci", "uhci_hcd", "usbhid", "hid_generic"}},
		{name: "input", why: "buttons and keys (button.press)",
			modules: []string{"evdev", "button", "uinput", "soc_button_array", "gpio_keys", "intel_hid", "intel_vbtn"}},
		{name: "lte", why: "modems' AT ports (ttyUSB, ttyACM)",
			modules: []string{"usbserial", "option", "qcserial", "cdc_acm"}},
		{name: "radio", why: "Wi-Fi and Bluetooth stacks plus their virtual devices (cfg80211 ~510K, mac80211 ~610K, bluetooth ~470K)",
			modules: []string{"cfg80211", "mac80211", "mac80211_hwsim", "rfkill", "bluetooth", "hci_vhci", "btusb", "ecdh_generic", "cmac", "ccm", "gcm", "ctr"}},
		{name: "radio-hw", why: "Wi-Fi/Bluetooth chip drivers: useless without their firmware (iwlwifi+iwlmvm ~510K)",
			needsFirmware: true,
			modules:       []string{"iwlwifi", "iwlmvm", "ath9k", "ath10k_pci", "brcmfmac", "btintel", "btrtl", "btbcm", "btmtk"}},
		{name: "testbed", why: "emulated modem on a configfs USB gadget (hardware.md)",
			testOnly: true,
			modules:  []string{"dummy_hcd", "libcomposite", "usb_f_acm", "usb_f_serial"}},
		{name: "testbed-peers", why: "AF_ALG for BlueZ's btvirt, a real test peer (docs/radio.md; CCMP is in the radio group)",
			testOnly: true,
			modules:  []string{"algif_hash", "algif_skcipher", "ecb"}},
	}
}

// selectModules returns the module names for the build.
func selectModules(groups []moduleGroup, withFirmware, test bool, add, drop []string) []string {
	dropped := map[string]bool{}
	for _, d := range drop {
		dropped[canonical(d)] = true
	}
	var out []string
	seen := map[string]bool{}
	addOne := func(m string) {
		c := canonical(m)
		if !seen[c] && !dropped[c] {
			seen[c] = true
			out = append(out, m)
		}
	}
	for _, g := range groups {
		if g.needsFirmware && !withFirmware || g.testOnly && !test {
			continue
		}
		for _, m := range g.modules {
			addOne(m)
		}
	}
	for _, m := range add {
		addOne(m)
	}
	return out
}

func canonical(m string) string { return strings.ReplaceAll(m, "-", "_") }

// modName is the module name of a modules.dep path: kernel/drivers/net/virtio_net.ko.xz ->
// virtio_net.
func modName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".zst", ".xz", ".gz"} {
		b = strings.TrimSuffix(b, ext)
	}
	return canonical(strings.TrimSuffix(b, ".ko"))
}

// depTree is a parsed modules.dep.
type depTree struct {
	paths []string            // module paths in file order
	deps  map[string][]string // path -> dependency paths
	byMod map[string]string   // module name -> path
}

func parseModulesDep(r io.Reader) (*depTree, error) {
	t := &depTree{deps: map[string][]string{}, byMod: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		p, deps, ok := strings.Cut(sc.Text(), ":")
		p = strings.TrimSpace(p)
		if !ok || p == "" {
			continue
		}
		t.paths = append(t.paths, p)
		t.deps[p] = strings.Fields(deps)
		t.byMod[modName(p)] = p
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	return t, nil
}

// closure returns the module paths needed for names (dependencies included), in modules.dep
// order, and the names that are neither modules nor built in.
func (t *depTree) closure(names []string, builtin map[string]bool) (paths, missing []string) {
	want := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if want[p] {
			return
		}
		want[p] = true
		for _, d := range t.deps[p] {
			visit(d)
		}
	}
	for _, n := range names {
		p, ok := t.byMod[canonical(n)]
		if !ok {
			if !builtin[canonical(n)] {
				missing = append(missing, n)
			}
			continue
		}
		visit(p)
	}
	for _, p := range t.paths {
		if want[p] {
			paths = append(paths, p)
		}
	}
	return paths, missing
}

// trimmedDep renders modules.dep for the given paths only.
func (t *depTree) trimmedDep(paths []string) string {
	var b strings.Builder
	for _, p := range paths {
		b.WriteString(p + ":")
		if d := t.deps[p]; len(d) > 0 {
			b.WriteString(" " + strings.Join(d, " "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// trimAliases keeps the modules.alias lines of the given modules.
func trimAliases(r io.Reader, mods map[string]bool) (string, error) {
	var b strings.Builder
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "alias" && mods[canonical(f[2])] {
			b.WriteString(sc.Text() + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read modules.alias: %w", err)
	}
	return b.String(), nil
}

// readBuiltin returns modules.builtin's content and the set of built-in module names.
func readBuiltin(dir string) (string, map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	if os.IsNotExist(err) {
		return "", map[string]bool{}, nil
	}
	if err != nil {
		return "", nil, err
	}
	set := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			set[modName(l)] = true
		}
	}
	return string(b), set, nil
}

// moduleFile is one file to put under /lib/modules/<kver>/.
type moduleFile struct {
	rel     string // path relative to the module dir
	src     string // host path ("" when content is set)
	content string
}

// moduleSet computes the module files of the initramfs from a module tree.
type moduleSet struct {
	files   []moduleFile
	names   []string // modules included (closure)
	missing []string // requested but absent
	bytes   int64    // uncompressed .ko bytes
}

func buildModuleSet(dir string, names []string) (*moduleSet, error) {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("module tree %s: %w (run depmod -b ROOT VERSION)", dir, err)
	}
	defer f.Close()
	tree, err := parseModulesDep(f)
	if err != nil {
		return nil, err
	}
	builtinText, builtin, err := readBuiltin(dir)
	if err != nil {
		return nil, err
	}
	paths, missing := tree.closure(names, builtin)
	set := &moduleSet{missing: missing}
	inSet := map[string]bool{}
	for _, p := range paths {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			return nil, fmt.Errorf("module %s listed in modules.dep: %w", p, err)
		}
		set.bytes += fi.Size()
		set.files = append(set.files, moduleFile{rel: p, src: filepath.Join(dir, p)})
		set.names = append(set.names, modName(p))
		inSet[modName(p)] = true
	}
	af, err := os.Open(filepath.Join(dir, "modules.alias"))
	if err != nil {
		return nil, fmt.Errorf("module tree %s: %w", dir, err)
	}
	defer af.Close()
	aliases, err := trimAliases(af, inSet)
	if err != nil {
		return nil, err
	}
	set.files = append(set.files,
		moduleFile{rel: "modules.dep", content: tree.trimmedDep(paths)},
		moduleFile{rel: "modules.alias", content: aliases},
		moduleFile{rel: "modules.builtin", content: builtinText},
	)
	sort.Strings(set.names)
	return set, nil
}
