//go:build e2e

package scenarios

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/flashline/flashline/testbed/qemu"
	"github.com/u-root/u-root/pkg/cpio"
)

// modulesDir follows the Makefile (FLASHLINE_KERNEL, FLASHLINE_KERNEL_DIR,
// FLASHLINE_KVER), else the newest kernel scripts/setup unpacked: the release changes with
// Debian's updates, so it is never written here.
func modulesDir(t *testing.T) string {
	t.Helper()
	d, err := qemu.ModulesDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// goBuild builds a static binary of pkg for the guest.
func goBuild(t *testing.T, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
}

// moduleClosure returns the .ko paths (relative to the modules dir) of names
// and their dependencies, from modules.dep.
func moduleClosure(t *testing.T, names ...string) []string {
	t.Helper()
	dep, err := os.ReadFile(filepath.Join(modulesDir(t), "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(dep))
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		base := strings.TrimSuffix(filepath.Base(mod), ".ko")
		byName[strings.ReplaceAll(base, "-", "_")] = mod
	}
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		p, ok := byName[n]
		if !ok {
			t.Fatalf("module %s not in modules.dep", n)
		}
		for _, q := range append([]string{p}, deps[p]...) {
			if !seen[q] {
				seen[q] = true
				out = append(out, q)
			}
		}
	}
	return out
}

// initramfs writes a gzipped newc archive with the files (archive path ->
// host path) plus /dev/console and the given modules.
func initramfs(t *testing.T, out string, files map[string]string, modules []string) {
	t.Helper()
	var recs []cpio.Record
	recs = append(recs, cpio.Directory("dev", 0o755), cpio.CharDev("dev/console", 0o600, 5, 1))
	for _, d := range []string{"proc", "sys", "tmp", "bin", "lib/firmware"} {
		recs = append(recs, cpio.Directory(d, 0o755))
	}
	add := func(dst, src string, perm uint64) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, cpio.StaticFile(dst, string(b), perm))
	}
	for dst, src := range files {
		add(dst, src, 0o755)
	}
	md := "lib/modules/" + filepath.Base(modulesDir(t))
	for _, f := range []string{"modules.dep", "modules.alias", "modules.builtin", "modules.order"} {
		if _, err := os.Stat(filepath.Join(modulesDir(t), f)); err == nil {
			add(md+"/"+f, filepath.Join(modulesDir(t), f), 0o644)
		}
	}
	for _, m := range modules {
		add(md+"/"+m, filepath.Join(modulesDir(t), m), 0o644)
	}
	for _, f := range []string{"regulatory.db", "regulatory.db.p7s"} {
		add("lib/firmware/"+f, "/lib/firmware/"+f, 0o644)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := cpio.Newc.Writer(zw)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
