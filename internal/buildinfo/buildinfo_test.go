package buildinfo

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{GoVersion: "go1.99.1"}
		for i := 0; i+1 < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	for _, tc := range []struct {
		name         string
		commit, date string
		bi           *debug.BuildInfo
		want         Info
	}{
		{"stamp wins", "v1.2-3-gabc", "2026-12-03T10:00:00Z", vcs("vcs.revision", "0123456789abcdef0123"),
			Info{"v1.2-3-gabc", "2026-12-03T10:00:00Z", "go1.99.1"}},
		{"toolchain vcs", "", "", vcs("vcs.revision", "0123456789abcdef0123", "vcs.time", "2026-01-02T03:04:05Z"),
			Info{"0123456789ab", "2026-01-02T03:04:05Z", "go1.99.1"}},
		{"dirty tree", "", "", vcs("vcs.revision", "0123456789abcdef0123", "vcs.modified", "true"),
			Info{"0123456789ab-dirty", "", "go1.99.1"}},
		{"module version", "", "", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v0.3.0"}},
			Info{"v0.3.0", "", "go1.99.1"}},
		{"devel", "", "", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}},
			Info{"dev", "", "go1.99.1"}},
		{"no build info", "", "", nil, Info{"dev", "", runtime.Version()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.commit, tc.date, tc.bi); got != tc.want {
				t.Errorf("resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   Info
		want string
	}{
		{Info{"abc123", "2026-12-03T10:00:00Z", "go1.26.8"}, "abc123, built 2026-12-03T10:00:00Z, go1.26.8"},
		{Info{"dev", "", "go1.26.8"}, "dev, go1.26.8"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestStampLinks builds a program with Stamp's flags and checks that the binary reports them:
// the -X paths in LDFlags must name this package's variables, or the stamp is silently lost.
func TestStampLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "v")
	cmd := exec.Command("go", "build", "-ldflags", LDFlags("test-1-gdeadbee", "2026-12-03T10:00:00Z"), "-o", bin, "./testdata/printversion")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), "test-1-gdeadbee, built 2026-12-03T10:00:00Z, "+runtime.Version(); got != want {
		t.Errorf("stamped binary prints %q, want %q", got, want)
	}
}
