package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const hostapdLDD = `	linux-vdso.so.1 (0x00007ffd4a7f2000)
	libnl-3.so.200 => /lib/x86_64-linux-gnu/libnl-3.so.200 (0x00007f0a14ad2000)
	libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f0a14991000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0a1421e000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f0a14cf8000)
`

func TestParseLDD(t *testing.T) {
	tests := []struct {
		name, out     string
		libs, missing string
	}{
		{"hostapd", hostapdLDD, "/lib/x86_64-linux-gnu/libnl-3.so.200 /lib/x86_64-linux-gnu/libssl.so.3 /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2", ""},
		{"static", "\tnot a dynamic executable\n", "", ""},
		{"statically linked", "\tstatically linked\n", "", ""},
		{"missing", "\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n", "/lib/libc.so.6", "libfoo.so.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			libs, missing := parseLDD([]byte(tt.out))
			if strings.Join(libs, " ") != tt.libs || strings.Join(missing, " ") != tt.missing {
				t.Errorf("parseLDD = %v / %v, want %q / %q", libs, missing, tt.libs, tt.missing)
			}
		})
	}
}

func TestHostBinaryFiles(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "usr/sbin/hostapd")
	lib := filepath.Join(dir, "lib/x86_64-linux-gnu/libc.so.6")
	loader := filepath.Join(dir, "lib64/ld-linux-x86-64.so.2")
	for _, p := range []string{prog, lib} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("elf"), 0o755)
	}
	os.MkdirAll(filepath.Dir(loader), 0o755)
	// The loader is a symlink on Debian; the image gets the file at the loader's path.
	if err := os.Symlink(lib, loader); err != nil {
		t.Fatal(err)
	}
	ldd := func(ctx context.Context, p string) ([]byte, error) {
		return []byte("\tlinux-vdso.so.1 (0x1)\n\tlibc.so.6 => " + lib + " (0x2)\n\t" + loader + " (0x3)\n"), nil
	}
	files, err := hostBinaryFiles(context.Background(), []string{prog, prog}, ldd)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{lib + ":" + strings.TrimPrefix(lib, "/"), lib + ":" + strings.TrimPrefix(loader, "/"), prog + ":" + strings.TrimPrefix(prog, "/")}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Errorf("files\n%v\nwant\n%v", files, want)
	}
	if _, err := hostBinaryFiles(context.Background(), []string{"hostapd"}, ldd); err == nil {
		t.Error("relative program accepted")
	}
	notFound := func(ctx context.Context, p string) ([]byte, error) {
		return []byte("\tlibnl-3.so.200 => not found\n"), nil
	}
	if _, err := hostBinaryFiles(context.Background(), []string{prog}, notFound); err == nil || !strings.Contains(err.Error(), "libnl-3.so.200") {
		t.Errorf("missing library: %v", err)
	}
}

func FuzzParseLDD(f *testing.F) {
	f.Add(hostapdLDD)
	f.Add("\tlibfoo.so => not found\n")
	f.Add("=> (")
	f.Fuzz(func(t *testing.T, s string) {
		libs, _ := parseLDD([]byte(s))
		for _, l := range libs {
			if !filepath.IsAbs(l) {
				t.Fatalf("relative library %q", l)
			}
		}
	})
}
