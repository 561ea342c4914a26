// Package kmod loads the kernel modules a device needs: those whose modules.alias patterns
// match the modalias of a device present in sysfs (what udev and modprobe do on a full
// system), a fixed list that is always loaded, and any named later (kmod.Load), each with its
// dependencies from modules.dep through u-root's pkg/kmodule.
//
// Loading a bus driver makes new devices appear (virtio devices behind virtio_pci, USB devices
// behind xhci_pci, disks behind ahci), so Probe scans again after each round of loading until
// nothing new is found.
package kmod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// AlwaysLoad returns the modules loaded on every device whatever sysfs shows: input event
// devices (evdev has a catch-all alias, but input devices only appear once their drivers are
// in), SCSI disks, and the NIC drivers of the line's VMs and boxes so that the network comes up
// even where a modalias does not match (a NIC behind an odd bridge), and mmc_block: an eMMC or
// SD card shows its modalias only once the card is initialised, often after Probe has settled
// (see WaitMMC). Missing ones are skipped.
func AlwaysLoad() []string {
	return []string{"virtio_pci", "virtio_net", "virtio_blk", "e1000", "evdev", "sd_mod", "mmc_block"}
}

// Loader finds and loads modules under a root directory.
type Loader struct {
	// Root is the file system root: "/" on the device, a fake tree in tests.
	Root string
	// KVer is the kernel release whose /lib/modules/KVer is used; "" means the running one.
	KVer string
	// Params returns the parameters to load a module with (from the kernel command line);
	// nil means none.
	Params func(module string) string
	// Modaliases lists the modalias of every device present; nil means scanning
	// Root/sys/devices.
	Modaliases func() ([]string, error)
	// DryRun, when set, is called with each module file instead of loading it (tests).
	DryRun func(path string)
	// Settle is how long to wait after a round of loading for new devices to show up before
	// scanning again; zero means 300ms.
	Settle time.Duration
	// MaxRounds bounds the scan/load rounds of Probe; zero means 5.
	MaxRounds int
	// Skip lists modules never loaded automatically (still loadable by name).
	Skip []string
	// Progress, when set, is told about each module as it is loaded or fails.
	Progress func(module string, err error)
}

// Report says what Probe did.
type Report struct {
	Loaded  []string         // modules loaded (with their dependencies), in order
	Failed  map[string]error // modules that failed to load
	Devices int              // modaliases seen in the last scan
	Rounds  int
}

// Load loads the named modules with their dependencies on this machine; module names may use
// '-' or '_'. Already loaded and built-in modules are fine. It returns an error naming every
// module that could not be loaded.
func Load(ctx context.Context, names ...string) error {
	return (&Loader{Root: "/"}).Load(ctx, names...)
}

// Probe loads the modules for the hardware present on this machine plus AlwaysLoad and
// extra.
func Probe(ctx context.Context, extra ...string) (Report, error) {
	return (&Loader{Root: "/"}).Probe(ctx, extra...)
}

// ModulesDir returns Root/lib/modules/<release>.
func (l *Loader) ModulesDir() (string, error) {
	kver := l.KVer
	if kver == "" {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return "", fmt.Errorf("uname: %w", err)
		}
		kver = unix.ByteSliceToString(u.Release[:])
	}
	return filepath.Join(l.root(), "lib/modules", kver), nil
}

func (l *Loader) root() string {
	if l.Root == "" {
		return "/"
	}
	return l.Root
}

// Aliases reads the module tree's modules.alias.
func (l *Loader) Aliases() (*Aliases, error) {
	dir, err := l.ModulesDir()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, "modules.alias"))
	if err != nil {
		return nil, fmt.Errorf("open modules.alias: %w", err)
	}
	defer f.Close()
	return ParseAliases(f)
}

// Load loads names with their dependencies.
func (l *Loader) Load(ctx context.Context, names ...string) error {
	_, failed, err := l.load(ctx, names)
	if err != nil {
		return err
	}
	return joinFailed(failed)
}

func joinFailed(failed map[string]error) error {
	if len(failed) == 0 {
		return nil
	}
	names := make([]string, 0, len(failed))
	for n := range failed {
		names = append(names, n)
	}
	sort.Strings(names)
	errs := make([]error, 0, len(names))
	for _, n := range names {
		errs = append(errs, fmt.Errorf("load module %s: %w", n, failed[n]))
	}
	return errors.Join(errs...)
}

// load loads each module in names, returning those loaded and those that failed.
func (l *Loader) load(ctx context.Context, names []string) ([]string, map[string]error, error) {
	failed := map[string]error{}
	if len(names) == 0 {
		return nil, failed, nil
	}
	var loaded []string
	opts := kmodule.ProbeOpts{RootDir: l.Root, KVer: l.KVer}
	if l.Root == "/" || l.Root == "" {
		opts.RootDir = ""
	}
	if l.DryRun != nil {
		opts.IgnoreProcMods = true
		var mu sync.Mutex // kmodule loads independent dependencies in parallel
		opts.DryRunCB = func(p string) {
			mu.Lock()
			defer mu.Unlock()
			loaded = append(loaded, strings.TrimSuffix(filepath.Base(p), ".ko"))
			l.DryRun(p)
		}
	}
	// A fresh prober per batch: it snapshots /proc/modules, which changes as we load.
	p, err := kmodule.NewProber(opts)
	if err != nil {
		return nil, failed, fmt.Errorf("read module dependencies: %w", err)
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return loaded, failed, err
		}
		params := ""
		if l.Params != nil {
			params = l.Params(n)
		}
		err := p.Probe(n, params)
		if err != nil {
			failed[n] = err
		} else if l.DryRun == nil {
			loaded = append(loaded, n)
		}
		if l.Progress != nil {
			l.Progress(n, err)
		}
	}
	return loaded, failed, nil
}

// Probe loads AlwaysLoad, extra, and every module matching a present device, rescanning
// after each round until no new module matches.
func (l *Loader) Probe(ctx context.Context, extra ...string) (Report, error) {
	rep := Report{Failed: map[string]error{}}
	aliases, err := l.Aliases()
	if err != nil {
		return rep, err
	}
	settle := l.Settle
	if settle == 0 {
		settle = 300 * time.Millisecond
	}
	maxRounds := l.MaxRounds
	if maxRounds == 0 {
		maxRounds = 5
	}
	skip := map[string]bool{}
	for _, s := range l.Skip {
		skip[canonical(s)] = true
	}
	tried := map[string]bool{}
	first := append(AlwaysLoad(), extra...)
	for rep.Rounds < maxRounds {
		mods, n, err := l.matching(aliases)
		if err != nil {
			return rep, err
		}
		rep.Devices = n
		var todo []string
		if rep.Rounds == 0 {
			for _, m := range first {
				if !tried[canonical(m)] {
					tried[canonical(m)] = true
					todo = append(todo, m)
				}
			}
		}
		for _, m := range mods {
			if c := canonical(m); !tried[c] && !skip[c] {
				tried[c] = true
				todo = append(todo, m)
			}
		}
		if len(todo) == 0 {
			break
		}
		rep.Rounds++
		loaded, failed, err := l.load(ctx, todo)
		rep.Loaded = append(rep.Loaded, loaded...)
		for k, v := range failed {
			rep.Failed[k] = v
		}
		if err != nil {
			return rep, err
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(settle):
		}
	}
	return rep, nil
}

// matching returns the modules matching present devices and how many devices there are.
func (l *Loader) matching(aliases *Aliases) ([]string, int, error) {
	scan := l.Modaliases
	if scan == nil {
		scan = func() ([]string, error) { return ScanModaliases(filepath.Join(l.root(), "sys/devices")) }
	}
	mas, err := scan()
	if err != nil {
		return nil, 0, err
	}
	set := map[string]bool{}
	for _, ma := range mas {
		for _, m := range aliases.Match(ma) {
			set[m] = true
		}
	}
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	sort.Strings(out)
	return out, len(mas), nil
}

// ScanModaliases returns the distinct contents of every file named modalias under dir
// (normally /sys/devices), without following symlinks.
func ScanModaliases(dir string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // a device vanishing mid-walk is normal
		}
		if d.IsDir() || d.Name() != "modalias" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		ma := strings.TrimSpace(string(b))
		if ma != "" && !seen[ma] {
			seen[ma] = true
			out = append(out, ma)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s for modaliases: %w", dir, err)
	}
	sort.Strings(out)
	return out, nil
}

func canonical(m string) string { return strings.ReplaceAll(m, "-", "_") }
