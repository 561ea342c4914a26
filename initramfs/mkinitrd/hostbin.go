package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Host programs in test initrds: the QEMU tests run real peers (Debian's hostapd, BlueZ's
// btvirt and btmgmt) inside the guest, so their binaries and every shared library the host's
// dynamic loader resolves for them go into the image at the same paths. Line images never
// carry them (main refuses -host-binary without -extra).

// lddFunc runs ldd on a program and returns its output.
type lddFunc func(ctx context.Context, path string) ([]byte, error)

func runLDD(ctx context.Context, path string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, "ldd", path).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", path, err)
	}
	return out, nil
}

// parseLDD returns the absolute library paths of ldd's output: "libc.so.6 => /lib/...
// (0x...)" and the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO and libraries
// ldd could not find ("=> not found") have no path and are left out (missing lists them).
func parseLDD(out []byte) (libs, missing []string) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.Contains(line, "statically linked") {
			continue
		}
		name, target, arrow := strings.Cut(line, "=>")
		if arrow {
			target = strings.TrimSpace(target)
			if strings.HasPrefix(target, "not found") {
				missing = append(missing, strings.TrimSpace(name))
				continue
			}
		} else {
			target = name
		}
		if i := strings.Index(target, " ("); i >= 0 {
			target = target[:i]
		}
		target = strings.TrimSpace(target)
		if filepath.IsAbs(target) && !strings.ContainsAny(target, " \t") {
			libs = append(libs, filepath.Clean(target))
		}
	}
	return libs, missing
}

// hostBinaryFiles returns the "hostpath:archivepath" entries for the programs and their
// libraries, each once. Symlinks are resolved on the host (the loader path is one), the
// archive keeps the path the program asks for.
func hostBinaryFiles(ctx context.Context, progs []string, ldd lddFunc) ([]string, error) {
	seen := map[string]string{}
	add := func(p string) error {
		if _, ok := seen[p]; ok {
			return nil
		}
		src, err := filepath.EvalSymlinks(p)
		if err != nil {
			return fmt.Errorf("host file %s: %w", p, err)
		}
		seen[p] = src
		return nil
	}
	for _, prog := range progs {
		if !filepath.IsAbs(prog) {
			return nil, fmt.Errorf("host binary %q: want an absolute path (it keeps it in the image)", prog)
		}
		if err := add(prog); err != nil {
			return nil, err
		}
		out, err := ldd(ctx, prog)
		if err != nil {
			return nil, err
		}
		libs, missing := parseLDD(out)
		if len(missing) > 0 {
			return nil, fmt.Errorf("host binary %s: libraries not found on this host: %s", prog, strings.Join(missing, ", "))
		}
		for _, l := range libs {
			if err := add(l); err != nil {
				return nil, err
			}
		}
	}
	var files []string
	for dst, src := range seen {
		files = append(files, src+":"+strings.TrimPrefix(dst, "/"))
	}
	sort.Strings(files)
	return files, nil
}

// hostFileSize sums the sizes of the files of entries, for the build's report.
func hostFileSize(entries []string) int64 {
	var n int64
	for _, e := range entries {
		src, _, _ := strings.Cut(e, ":")
		if fi, err := os.Stat(src); err == nil {
			n += fi.Size()
		}
	}
	return n
}
