// Command mkinitrd builds Flashline's netboot initramfs with the u-root/mkuimage API: u-root's
// init, flashline-agent as its uinit, the kernel modules the line's devices need (with their
// dependency closure and trimmed modules.dep/alias/builtin), the wireless regulatory database,
// optional firmware blobs and the operator's public key. It prints the image size at the end.
//
//	go run ./initramfs/mkinitrd -modules-dir /lib/modules/$(uname -r) [-firmware DIR]
//	    [-pubkey operator.pub] [-extra ./cmds/flashline-testbed] -o initrd.gz
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flashline/flashline/internal/buildinfo"
	"github.com/flashline/flashline/protocol"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// sizeGoal is the budget for an initrd without firmware: 8 MiB in issue 2, 10 MiB since
// issue 15 put a BitTorrent client in the agent (about 2.4 MiB of it, see docs/flash.md).
const sizeGoal = 10 << 20

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l = append(*l, x)
		}
	}
	return nil
}

type config struct {
	modulesDir  string
	firmware    string
	pubkey      string
	ca          string
	out         string
	compression string
	regdbDir    string
	version     string
	extra       listFlag
	hostBins    listFlag
	addMods     listFlag
	dropMods    listFlag
	listMods    bool
	fast        bool
	verbose     bool
}

func main() {
	var c config
	flag.StringVar(&c.modulesDir, "modules-dir", "", "kernel module tree, /lib/modules/<version> (with modules.dep); empty: no modules")
	flag.StringVar(&c.firmware, "firmware", "", "optional directory of firmware blobs, copied to /lib/firmware (also enables the Wi-Fi/BT chip drivers)")
	flag.StringVar(&c.pubkey, "pubkey", "", "operator's ed25519 public key, placed at "+protocol.PubKeyPath+"; without it the image is an UNSIGNED development image")
	flag.StringVar(&c.ca, "ca", "", "optional PEM CA to pin for HTTPS to the line server, placed at "+protocol.CAPath)
	flag.StringVar(&c.out, "o", "initrd.gz", "output file")
	flag.StringVar(&c.compression, "compress", "zstd", "zstd (default: smallest that unpacks fast), xz (smallest, slow to unpack under TCG) or gzip")
	flag.StringVar(&c.regdbDir, "regdb", "/lib/firmware", "directory holding regulatory.db and regulatory.db.p7s (wireless-regdb); skipped when absent")
	flag.StringVar(&c.version, "version", "", "agent version to stamp (default: git describe, else dev)")
	flag.Var(&c.extra, "extra", "extra Go command of this module to add to /bin (repeatable, e.g. ./cmds/flashline-testbed): for test-only initrds, also adds the testbed modules")
	flag.Var(&c.hostBins, "host-binary", "host program to add with the shared libraries ldd finds for it, at the same paths (repeatable, comma-separated; test initrds only: needs -extra), e.g. /usr/sbin/hostapd")
	flag.Var(&c.addMods, "add-modules", "extra kernel modules to include (comma-separated)")
	flag.Var(&c.dropMods, "drop-modules", "kernel modules to leave out (comma-separated)")
	flag.BoolVar(&c.listMods, "list-modules", false, "print the module groups and exit")
	flag.BoolVar(&c.fast, "fast", false, "compress quickly (about 1 s instead of 20-30 s, image ~30% larger): for test images built per run")
	flag.BoolVar(&c.verbose, "v", false, "print every module and file")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if c.listMods {
		for _, g := range moduleGroups() {
			tag := ""
			if g.needsFirmware {
				tag = " [only with -firmware]"
			}
			if g.testOnly {
				tag = " [only with -extra]"
			}
			fmt.Printf("%-9s %s%s\n          %s\n", g.name, g.why, tag, strings.Join(g.modules, " "))
		}
		return
	}
	if err := run(c, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "mkinitrd: %v\n", err)
		os.Exit(1)
	}
}

func run(c config, log io.Writer) error {
	start := time.Now()
	built := start.UTC().Format(time.RFC3339)
	if c.version == "" {
		c.version = buildinfo.Describe(".")
	}
	tmp, err := os.MkdirTemp("", "mkinitrd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	stage := filepath.Join(tmp, "stage")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	var files []string // "hostpath:archivepath"
	stageFile := func(dst, content string) error {
		p := filepath.Join(stage, strings.ReplaceAll(dst, "/", "_"))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
		files = append(files, p+":"+dst)
		return nil
	}

	// Kernel modules.
	withFirmware := c.firmware != ""
	test := len(c.extra) > 0
	var mods *moduleSet
	if c.modulesDir != "" {
		kver := filepath.Base(filepath.Clean(c.modulesDir))
		names := selectModules(moduleGroups(), withFirmware, test, c.addMods, c.dropMods)
		mods, err = buildModuleSet(c.modulesDir, names)
		if err != nil {
			return err
		}
		for _, f := range mods.files {
			dst := filepath.Join("lib/modules", kver, f.rel)
			if f.src != "" {
				files = append(files, f.src+":"+dst)
			} else if err := stageFile(dst, f.content); err != nil {
				return err
			}
		}
		fmt.Fprintf(log, "mkinitrd: %d kernel modules (%.1f MiB uncompressed) from %s\n", len(mods.names), float64(mods.bytes)/(1<<20), c.modulesDir)
		if c.verbose {
			fmt.Fprintf(log, "mkinitrd: modules: %s\n", strings.Join(mods.names, " "))
		}
		if len(mods.missing) > 0 {
			fmt.Fprintf(log, "mkinitrd: note: not in this kernel (neither module nor built in): %s\n", strings.Join(mods.missing, " "))
		}
	} else {
		fmt.Fprintln(log, "mkinitrd: WARNING: no -modules-dir: the image has no kernel modules (NICs may not come up)")
	}

	// Wireless regulatory database: cfg80211 loads it from /lib/firmware, and without it every
	// radio is limited to the world domain.
	for _, n := range []string{"regulatory.db", "regulatory.db.p7s"} {
		src, err := filepath.EvalSymlinks(filepath.Join(c.regdbDir, n))
		if err != nil {
			fmt.Fprintf(log, "mkinitrd: note: no %s in %s (install wireless-regdb)\n", n, c.regdbDir)
			continue
		}
		files = append(files, src+":lib/firmware/"+n)
	}

	// Firmware.
	if withFirmware {
		fi, err := os.Stat(c.firmware)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("-firmware %s: not a directory", c.firmware)
		}
		abs, err := filepath.Abs(c.firmware)
		if err != nil {
			return err
		}
		files = append(files, abs+":lib/firmware")
		fmt.Fprintf(log, "mkinitrd: firmware from %s\n", c.firmware)
	}

	// Trust anchors.
	if c.pubkey != "" {
		b, err := os.ReadFile(c.pubkey)
		if err != nil {
			return fmt.Errorf("-pubkey: %w", err)
		}
		if _, err := protocol.ParsePublicKey(b); err != nil {
			return fmt.Errorf("-pubkey %s: %w", c.pubkey, err)
		}
		if err := stageFile(strings.TrimPrefix(protocol.PubKeyPath, "/"), string(b)); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(log, "")
		fmt.Fprintln(log, "mkinitrd: ******************************************************************")
		fmt.Fprintln(log, "mkinitrd: WARNING: building an UNSIGNED development image (no -pubkey):")
		fmt.Fprintln(log, "mkinitrd: WARNING: its agent accepts jobs without a valid signature.")
		fmt.Fprintln(log, "mkinitrd: WARNING: never use it on a production line.")
		fmt.Fprintln(log, "mkinitrd: ******************************************************************")
		fmt.Fprintln(log, "")
	}
	if c.ca != "" {
		b, err := os.ReadFile(c.ca)
		if err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
		if _, err := protocol.ParseCA(b); err != nil {
			return fmt.Errorf("-ca %s: %w", c.ca, err)
		}
		if err := stageFile(strings.TrimPrefix(protocol.CAPath, "/"), string(b)); err != nil {
			return err
		}
	}
	if err := stageFile("etc/flashline/build", fmt.Sprintf("version=%s\nbuilt=%s\nmodules=%s\n", c.version, built, c.modulesDir)); err != nil {
		return err
	}

	// Host programs for test images (real peers: hostapd, BlueZ's tools).
	if len(c.hostBins) > 0 {
		if !test {
			return fmt.Errorf("-host-binary is for test initrds only (with -extra): line images carry no host programs")
		}
		hf, err := hostBinaryFiles(context.Background(), c.hostBins, runLDD)
		if err != nil {
			return err
		}
		fmt.Fprintf(log, "mkinitrd: %d host files (%s and libraries), %.1f MiB before compression\n", len(hf), strings.Join(c.hostBins, ", "), float64(hostFileSize(hf))/(1<<20))
		files = append(files, hf...)
	}

	// Go commands: u-root's init, the agent as uinit, and test extras.
	cmds := []string{"github.com/u-root/u-root/cmds/core/init", "./cmds/flashline-agent"}
	cmds = append(cmds, c.extra...)
	b := cachedBuilder{ldflags: buildinfo.LDFlags(c.version, built), tags: agentTags}
	out := c.out
	lvl := slog.LevelWarn
	if c.verbose {
		lvl = slog.LevelInfo
	}
	l := llog.New(lvl, func(format string, v ...any) { fmt.Fprintf(log, "mkuimage: "+format+"\n", v...) })
	err = uimage.Create(l,
		uimage.WithTempDir(tmp),
		uimage.WithBaseArchive(uimage.DefaultRamfs()),
		uimage.WithCommands(nil, b, cmds...),
		uimage.WithInit("init"),
		uimage.WithUinit("flashline-agent"),
		uimage.WithFiles(files...),
		uimage.WithSkipLDD(),
		uimage.WithOutput(compressedCPIO{path: out + ".tmp", format: c.compression, fast: c.fast}),
	)
	if err != nil {
		os.Remove(out + ".tmp")
		return fmt.Errorf("build initramfs: %w", err)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	size := fi.Size()
	verdict := "within"
	if size > sizeGoal {
		verdict = "OVER"
	}
	fwNote := ""
	if withFirmware {
		fwNote = " (with firmware: the goal applies without)"
	}
	if c.fast {
		fwNote += " (-fast: the goal applies to the default compression)"
	}
	fmt.Fprintf(log, "mkinitrd: agent %s, commands: %s\n", c.version, strings.Join(baseNames(cmds), " "))
	fmt.Printf("%s: %d bytes (%.2f MiB), %s the %d MiB goal%s, built in %.1fs\n", out, size, float64(size)/(1<<20), verdict, sizeGoal>>20, fwNote, time.Since(start).Seconds())
	return nil
}

func baseNames(cmds []string) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = filepath.Base(c)
	}
	sort.Strings(out[2:])
	return out
}

// agentTags trim the BitTorrent library (anacrolix/torrent) in the agent: no BoltDB or SQLite
// piece-completion stores (the agent's pieces live in its memory window) and no libutp (the
// build is CGO_ENABLED=0 anyway, and the agent speaks TCP only). Its WebRTC and DHT code has
// no build tag and stays linked, unused (see docs/flash.md for the cost).
var agentTags = []string{"disable_libutp", "noboltdb", "nosqlite"}
