package main

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/u-root/u-root/pkg/cpio"
)

// buildInitrd compiles cmds/gm-soft-kit statically and packs it as /init into a gzip'd newc
// cpio with the few nodes the kernel needs before init mounts devtmpfs: without /dev/console
// in the archive, PID 1 would start with no console.
func buildInitrd(ctx context.Context, out string) error {
	dir, err := os.MkdirTemp("", "mkfirmware")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "init")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin,
		"github.com/flashline/flashline/cmds/gm-soft-kit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build gm-soft-kit: %w: %s", err, b)
	}
	initBin, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	f, err := os.Create(out + ".part")
	if err != nil {
		return err
	}
	defer os.Remove(out + ".part")
	if err := writeInitrd(f, initBin); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(out+".part", out)
}

// writeInitrd writes the gzip'd cpio archive with init as /init.
func writeInitrd(w io.Writer, init []byte) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	rw := cpio.Newc.Writer(zw)
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Directory("proc", 0o755),
		cpio.Directory("sys", 0o755),
		cpio.StaticFile("init", string(init), 0o755),
	}
	cpio.MakeAllReproducible(recs)
	if err := cpio.WriteRecords(rw, recs); err != nil {
		return err
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return err
	}
	return zw.Close()
}
