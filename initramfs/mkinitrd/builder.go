package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage/builder"
	"github.com/u-root/mkuimage/uimage/initramfs"
	"github.com/u-root/uio/llog"
)

// cachedBuilder is a mkuimage builder.Builder that builds each command as its own static
// binary with the Go build cache. mkuimage's own builders pass -a (rebuild everything), which
// makes every initrd build take a minute; with the cache a rebuild after an edit takes about
// a second, and the binaries are the same (stripped, -trimpath).
type cachedBuilder struct {
	// ldflags are added to "-s -w" (e.g. -X for the version stamp).
	ldflags string
	// tags are Go build tags.
	tags []string
}

var _ builder.Builder = cachedBuilder{}

// DefaultBinaryDir implements builder.Builder: u-root's init looks for /bin/uinit.
func (cachedBuilder) DefaultBinaryDir() string { return "bin" }

// Build implements builder.Builder.
func (b cachedBuilder) Build(l *llog.Logger, af *initramfs.Files, opts builder.Opts) error {
	if opts.Env == nil {
		return builder.ErrEnvMissing
	}
	if opts.TempDir == "" {
		return builder.ErrTempDirMissing
	}
	dir := opts.BinaryDir
	if dir == "" {
		dir = b.DefaultBinaryDir()
	}
	if err := os.MkdirAll(filepath.Join(opts.TempDir, dir), 0o755); err != nil {
		return err
	}
	// The temporary directory becomes the archive's root entry: MkdirTemp's 0700 would make
	// the device's / unreadable to anything not root.
	if err := os.Chmod(opts.TempDir, 0o755); err != nil {
		return err
	}
	errs := make([]error, len(opts.Packages))
	var wg sync.WaitGroup
	for i, pkg := range opts.Packages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.buildOne(opts.Env, pkg, filepath.Join(opts.TempDir, dir, filepath.Base(pkg)))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return af.AddFile(opts.TempDir, "")
}

func (b cachedBuilder) buildOne(env *golang.Environ, pkg, out string) error {
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -buildid= " + b.ldflags, "-o", out}
	if len(b.tags) > 0 {
		args = append(args, "-tags", joinComma(b.tags))
	}
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env.Env()...)
	cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, o)
	}
	return nil
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}
