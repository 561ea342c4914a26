// Package buildinfo says which build of Flashline is running: the git commit it was built from,
// when, and with which Go. Both binaries print it for `version`, the agent on the console at
// boot, so a line engineer can tell from a device's screen or a bug report which code ran.
//
// The commit and date are stamped at link time, because the builds run with -buildvcs=false
// (the Makefile's GOFLAGS; go build inside a tree without .git would fail otherwise):
//
//	go build -ldflags "$(go run ./internal/buildinfo/ldflags)" ./cmds/flashline-server
//
// or with LDFlags from Go (initramfs/mkinitrd, scripts/line). Without a stamp the Go
// toolchain's own VCS stamp is used when there is one, else "dev".
package buildinfo

import (
	"fmt"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Set with -X at link time (see LDFlags); never written at run time.
var (
	commit string
	date   string
)

// pkg is this package's import path, the -X prefix.
const pkg = "github.com/flashline/flashline/internal/buildinfo"

// Info describes one build.
type Info struct {
	// Version is the git description of the commit (`git describe --always --dirty --tags`),
	// or "dev" for a build without one.
	Version string `json:"version"`
	// Date is the build time, RFC 3339 in UTC, or "" when unknown.
	Date string `json:"date,omitempty"`
	// Go is the Go release that built the binary.
	Go string `json:"go"`
}

// Get returns the running binary's build information.
func Get() Info {
	return resolve(commit, date, readBuildInfo())
}

func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// resolve prefers the link-time stamp, then the toolchain's VCS settings, then the module
// version (go install mod@version), then "dev".
func resolve(commit, date string, bi *debug.BuildInfo) Info {
	in := Info{Version: commit, Date: date, Go: runtime.Version()}
	if bi == nil {
		if in.Version == "" {
			in.Version = "dev"
		}
		return in
	}
	if bi.GoVersion != "" {
		in.Go = bi.GoVersion
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if in.Version == "" && rev != "" {
		in.Version = rev[:min(len(rev), 12)]
		if modified {
			in.Version += "-dirty"
		}
		if in.Date == "" {
			in.Date = when
		}
	}
	if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		in.Version = bi.Main.Version
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	return in
}

// String is the one line both binaries print for `version`, after the program's name.
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	if i.Date != "" {
		fmt.Fprintf(&b, ", built %s", i.Date)
	}
	fmt.Fprintf(&b, ", %s", i.Go)
	return b.String()
}

// LDFlags returns the -ldflags -X arguments that stamp version and date into a build.
func LDFlags(version, date string) string {
	return fmt.Sprintf("-X %s.commit=%s -X %s.date=%s", pkg, version, pkg, date)
}

// Describe names the checkout in dir for a stamp: `git describe --always --dirty --tags`, or
// "dev" when dir is no git checkout (a source tarball) or git is missing.
func Describe(dir string) string {
	cmd := exec.Command("git", "describe", "--always", "--dirty", "--tags")
	cmd.Dir = dir
	o, err := cmd.Output()
	if v := strings.TrimSpace(string(o)); err == nil && v != "" {
		return v
	}
	return "dev"
}

// Stamp returns the -ldflags -X arguments for a build of the checkout in dir made now.
func Stamp(dir string) string {
	return LDFlags(Describe(dir), time.Now().UTC().Format(time.RFC3339))
}
