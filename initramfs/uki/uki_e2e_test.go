//go:build e2e

package uki_test

// Boots the unified kernel image in QEMU under OVMF with Secure Boot on and the test's own
// PK/KEK/db enrolled into the variable store (package ovmfvars): the image signed with the db
// key boots the agent, an unsigned image and an image signed with another key (Debian's OVMF
// snakeoil key) are refused by the firmware.
//
// Needs: qemu-system-x86, ovmf, mtools, sbsigntool, systemd-boot-efi, openssl, the kernel
// (FLASHLINE_KERNEL) and initrd.gz (FLASHLINE_INITRD, built by `make`).

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashline/flashline/initramfs/uki"
	"github.com/flashline/flashline/initramfs/uki/ovmfvars"
	"github.com/flashline/flashline/testbed/qemu"
)

const (
	ovmfCode     = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfVars     = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	snakeoilKey  = "/usr/share/ovmf/PkKek-1-snakeoil.key" // password "snakeoil"
	snakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
	// The command line baked into the signed image; panic=-1 turns a kernel panic into an exit.
	testCmdline = "console=ttyS0,115200 panic=-1 flashline.server=http://10.0.2.2:9 flashline.uki-test=1"
)

var (
	reSecureBoot = regexp.MustCompile(`secureboot: Secure boot enabled`)
	reCmdline    = regexp.MustCompile(`Kernel command line: .*flashline\.uki-test=1`)
	reAgent      = regexp.MustCompile(`\] flashline: `)
	reDenied     = regexp.MustCompile(`BdsDxe: failed to load .*: (Access Denied|Security Violation)`)
	reNoBoot     = regexp.MustCompile(`BdsDxe: No bootable option or device was found`)
	reLinux      = regexp.MustCompile(`Linux version `)
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: scripts/setup installs it", tool)
		}
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func kernelPath(t *testing.T) string {
	if k := os.Getenv("FLASHLINE_KERNEL"); k != "" {
		return k
	}
	m, _ := filepath.Glob("/var/cache/flashline/kernel/boot/vmlinuz-*")
	if len(m) == 0 {
		t.Fatal("no kernel: set FLASHLINE_KERNEL or run scripts/setup")
	}
	return m[len(m)-1]
}

// signer is an RSA key and self-signed certificate as sbsign wants them (PEM files).
type signer struct{ key, cert string }

func newSigner(t *testing.T, dir, cn string) (signer, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	s := signer{key: filepath.Join(dir, cn+".key"), cert: filepath.Join(dir, cn+".crt")}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(s.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	os.WriteFile(s.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return s, der
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// esp makes a FAT ESP image holding efi as the removable-media boot path.
func esp(t *testing.T, dir, name, efi string) string {
	t.Helper()
	img := filepath.Join(dir, name)
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(64 << 20)
	f.Close()
	run(t, "mformat", "-i", img, "-F", "::")
	run(t, "mmd", "-i", img, "::/EFI", "::/EFI/BOOT")
	run(t, "mcopy", "-i", img, efi, "::/EFI/BOOT/BOOTX64.EFI")
	return img
}

// boot runs one guest until the console matches stop (or timeout) and returns the console.
// testbed/qemu holds the machine-wide QEMU lock for the guest's life.
func boot(t *testing.T, varsTemplate []byte, espImg string, stop []*regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	res, err := qemu.Boot(context.Background(), qemu.BootConfig{
		Image: espImg, Firmware: qemu.UEFI, SecureBoot: true, OVMFCode: ovmfCode, OVMFVars: varsTemplate, Timeout: timeout,
	}, func(line string) bool {
		for _, re := range stop {
			if re.MatchString(line) {
				return true
			}
		}
		return false
	})
	if res == nil {
		t.Fatal(err)
	}
	t.Logf("guest ran %s (%v)", res.Elapsed.Round(100*time.Millisecond), err)
	return res.Console
}

func TestUKISecureBoot(t *testing.T) {
	need(t, "qemu-system-x86_64", "mformat", "mcopy", "sbsign", "openssl")
	dir := t.TempDir()
	kernel := kernelPath(t)
	initrd := env("FLASHLINE_INITRD", "../../initrd.gz") // the package directory is the test's cwd
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v", err)
		}
		return b
	}
	img, err := uki.Build(uki.Input{Stub: read(uki.DefaultStub), Kernel: read(kernel), Initrd: read(initrd), Cmdline: testCmdline, OSRelease: "ID=flashline\n"})
	if err != nil {
		t.Fatal(err)
	}
	unsigned := filepath.Join(dir, "flashline.efi")
	if err := os.WriteFile(unsigned, img, 0o644); err != nil {
		t.Fatal(err)
	}

	// The machine owner's keys: one self-made certificate as PK, KEK and db, enrolled offline.
	owner, ownerDER := newSigner(t, dir, "flashline-test-db")
	vars, err := ovmfvars.EnrollSecureBoot(read(ovmfVars), ovmfvars.Keys{
		PK: ownerDER, KEK: ownerDER, DB: ownerDER, Owner: ovmfvars.MustGUID("f1a5411e-0000-4000-8000-000000000001"),
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	signedOwn := filepath.Join(dir, "flashline.signed.efi")
	run(t, "sbsign", "--key", owner.key, "--cert", owner.cert, "--output", signedOwn, unsigned)
	run(t, "sbverify", "--cert", owner.cert, signedOwn)

	// Another key: Debian's published OVMF snakeoil key (trusted by OVMF_VARS_4M.snakeoil.fd,
	// not by our store).
	snake := filepath.Join(dir, "snakeoil.key")
	run(t, "openssl", "pkey", "-in", snakeoilKey, "-passin", "pass:snakeoil", "-out", snake)
	signedOther := filepath.Join(dir, "flashline.snakeoil.efi")
	run(t, "sbsign", "--key", snake, "--cert", snakeoilCert, "--output", signedOther, unsigned)

	t.Run("signed with the enrolled db key boots the agent", func(t *testing.T) {
		con := boot(t, vars, esp(t, dir, "own.img", signedOwn), []*regexp.Regexp{reAgent, reNoBoot}, 4*time.Minute)
		for _, re := range []*regexp.Regexp{reSecureBoot, reCmdline, reAgent} {
			line := regexp.MustCompile(`.*` + re.String() + `.*`).FindString(con)
			if line == "" {
				t.Fatalf("console lacks %q:\n%s", re, tail(con, 60))
			}
			t.Logf("console: %s", strings.TrimSpace(line))
		}
		if reDenied.MatchString(con) {
			t.Fatalf("firmware denied the signed image:\n%s", tail(con, 30))
		}
	})
	for _, tc := range []struct{ name, efi string }{
		{"unsigned is refused by the firmware", unsigned},
		{"signed with another key is refused by the firmware", signedOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			con := boot(t, vars, esp(t, dir, filepath.Base(tc.efi)+".img", tc.efi), []*regexp.Regexp{reNoBoot, reLinux}, 4*time.Minute)
			if !reDenied.MatchString(con) {
				t.Fatalf("no firmware refusal on the console:\n%s", tail(con, 30))
			}
			if reLinux.MatchString(con) {
				t.Fatalf("the kernel started:\n%s", tail(con, 30))
			}
			t.Logf("firmware: %s", reDenied.FindString(con))
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
