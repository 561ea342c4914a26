package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runFlash runs the flash subcommand and returns its exit code and stderr.
func runFlash(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	code := cmdFlash(context.Background(), args)
	os.Stderr = old
	w.Close()
	return code, <-done
}

// The command line is a contract: exit 0 only for a complete, synced, matching image;
// otherwise non-zero with a one-line reason.
func TestFlashCommand(t *testing.T) {
	dir := t.TempDir()
	img := bytes.Repeat([]byte("flashline image "), 300000)
	src := filepath.Join(dir, "img.raw")
	os.WriteFile(src, img, 0o644)
	s := sha256.Sum256(img)
	sum := hex.EncodeToString(s[:])
	dst := filepath.Join(dir, "disk")

	code, out := runFlash(t, "--sha256", sum, "--size", "4800000", src, dst)
	if code != 0 || !strings.Contains(out, "wrote 4800000 bytes (raw)") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, img) {
		t.Fatal("target differs from the image")
	}
	// Flags after the operands work too.
	if code, out := runFlash(t, src, dst, "--sha256", sum); code != 0 {
		t.Fatalf("flags after operands: exit %d: %s", code, out)
	}

	code, out = runFlash(t, "--sha256", strings.Repeat("0", 64), src, dst)
	if code == 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 ||
		!strings.HasPrefix(out, "flash: sha256 mismatch: got "+sum+" want "+strings.Repeat("0", 64)) {
		t.Fatalf("mismatch: exit %d: %q", code, out)
	}
	code, out = runFlash(t, "--size", "5000000", src, dst)
	if code == 0 || !strings.HasPrefix(out, "flash: source is 4800000 bytes, --size says 5000000") {
		t.Fatalf("size: exit %d: %q", code, out)
	}
	if code, _ := runFlash(t, src); code != 2 {
		t.Errorf("missing target: exit %d", code)
	}
	if code, _ := runFlash(t, "--size", "lots", src, dst); code != 2 {
		t.Errorf("bad --size: exit %d", code)
	}
	if code, out := runFlash(t, "--memory", "16", src, dst); code != 2 || !strings.Contains(out, "at least 32 MiB") {
		t.Errorf("--memory 16: exit %d %q", code, out)
	}
	if code, out := runFlash(t, filepath.Join(dir, "missing"), dst); code == 0 || !strings.HasPrefix(out, "flash: open source") {
		t.Errorf("missing source: exit %d %q", code, out)
	}
}

// TestFlashRefusesMissingDevice is issue 13's "no disk, no flash": a TARGET under /dev that
// does not exist used to exit 0 and leave a regular file in devtmpfs (the image in RAM). Now
// it exits non-zero with a one-line reason and creates nothing; so does a /dev path that is
// not a block device.
func TestFlashRefusesMissingDevice(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "img.raw")
	os.WriteFile(src, bytes.Repeat([]byte("x"), 8192), 0o644)
	missing := "/dev/flashline-test-nonexistent-" + filepath.Base(dir)
	code, out := runFlash(t, src, missing)
	if code == 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "no such block device") {
		t.Fatalf("missing /dev target: exit %d: %q", code, out)
	}
	if _, err := os.Lstat(missing); err == nil {
		os.Remove(missing)
		t.Fatalf("flash created %s", missing)
	}
	if code, out := runFlash(t, src, "/dev/null"); code == 0 || !strings.Contains(out, "character device") {
		t.Fatalf("character device target: exit %d: %q", code, out)
	}
}
