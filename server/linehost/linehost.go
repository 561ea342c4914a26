// Package linehost lays out a line host for flashline-server from what is installed on it:
// the TFTP root with the syslinux boot loaders of the Debian packages, the agent's kernel and
// initramfs, the operator's signing key and a commented server.yaml for proxy or full DHCP
// with this host's interface and addresses filled in. It is what `flashline-server init`
// runs. Running it again with the same inputs changes nothing; a file that would change is
// refused unless Force is set, and the signing key is never replaced.
package linehost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/flashline/flashline/server/keys"
)

// Options says where to lay the host out and from what.
type Options struct {
	// ConfigDir holds server.yaml and keys/ (default /etc/flashline).
	ConfigDir string
	// SrvDir holds tftp/, images/ and scenarios/ (default /srv/flashline).
	SrvDir string
	// DataDir is the results database's directory written into server.yaml (default
	// /var/lib/flashline). Init does not create it: the server does, once its check passes.
	DataDir string
	// Kernel and Initrd are copied into the TFTP root as vmlinuz and initrd.gz when given.
	Kernel, Initrd string
	// Mode is proxy (beside the plant's DHCP server, the default) or full.
	Mode string
	// Interface is the line network's interface (default: the only one with a global IPv4
	// address, else the one with the default route).
	Interface string
	// Force replaces files whose content would change (never the signing key).
	Force bool
	// KeyOwner, when set, is the uid and gid the signing key is given to: the user the
	// service runs as.
	KeyOwner *[2]int
	// Packages lists a Debian package's files (default: dpkg -L).
	Packages func(ctx context.Context, pkg string) ([]string, error)
	// Interfaces lists this host's interfaces and addresses (default: from net).
	Interfaces func() ([]Interface, error)
}

// Interface is one network interface with its IPv4 prefixes.
type Interface struct {
	Name   string
	Addrs  []netip.Prefix
	Up     bool
	Loop   bool
	Router bool // carries the default route
}

// Action is what Init did with one path.
type Action struct {
	Path string
	What string // created, unchanged, replaced, kept
}

// bootFile is a syslinux file the TFTP root needs, found in a package by its name and,
// where the package holds several of that name, a directory it must be under.
type bootFile struct {
	name, pkg, under string
}

var bootFiles = []bootFile{
	{"pxelinux.0", "pxelinux", ""},
	{"lpxelinux.0", "pxelinux", ""},
	{"ldlinux.c32", "syslinux-common", "/bios/"},
	{"syslinux.efi", "syslinux-efi", "/efi64/"},
	{"ldlinux.e64", "syslinux-common", "/efi64/"},
}

// Init lays the host out and returns what it did with each path, in order. On an error the
// actions so far are returned with it.
func Init(ctx context.Context, o Options) ([]Action, error) {
	o.defaults()
	if o.Mode != "proxy" && o.Mode != "full" {
		return nil, fmt.Errorf("mode %q: want proxy or full", o.Mode)
	}
	ifc, err := pickInterface(o)
	if err != nil {
		return nil, err
	}
	var acts []Action
	tftp := filepath.Join(o.SrvDir, "tftp")
	for _, d := range []string{tftp, filepath.Join(o.SrvDir, "images"), filepath.Join(o.SrvDir, "scenarios")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return acts, fmt.Errorf("create %s: %w", d, err)
		}
	}
	for _, bf := range bootFiles {
		src, err := findInPackage(ctx, o.Packages, bf)
		if err != nil {
			return acts, err
		}
		a, err := copyFile(src, filepath.Join(tftp, bf.name), 0o644, o.Force)
		acts = append(acts, a)
		if err != nil {
			return acts, err
		}
	}
	for _, c := range []struct{ src, name string }{{o.Kernel, "vmlinuz"}, {o.Initrd, "initrd.gz"}} {
		if c.src == "" {
			continue
		}
		a, err := copyFile(c.src, filepath.Join(tftp, c.name), 0o644, o.Force)
		acts = append(acts, a)
		if err != nil {
			return acts, err
		}
	}
	keyDir := filepath.Join(o.ConfigDir, "keys")
	priv := filepath.Join(keyDir, keys.PrivateKeyFile)
	if _, err := os.Stat(priv); err == nil {
		// Agents are built with the public key: replacing it would strand them, so a
		// re-run, even forced, keeps it.
		acts = append(acts, Action{priv, "kept"})
	} else {
		kp, err := keys.Generate(keyDir)
		if err != nil {
			return acts, fmt.Errorf("operator key: %w", err)
		}
		acts = append(acts, Action{kp.Private, "created"}, Action{kp.Public, "created"})
	}
	cfg, err := renderConfig(o, ifc, priv)
	if err != nil {
		return acts, err
	}
	cfgPath := filepath.Join(o.ConfigDir, "server.yaml")
	// The package installs a placeholder server.yaml (a conffile) for init to replace.
	old, _ := os.ReadFile(cfgPath)
	a, err := writeFile(cfgPath, cfg, 0o644, o.Force || bytes.HasPrefix(old, []byte(PlaceholderMarker)))
	acts = append(acts, a)
	if err != nil {
		return acts, err
	}
	if o.KeyOwner != nil {
		// The service runs as its own user; the key must stay 0600, so it must be that user's.
		for _, p := range []string{keyDir, priv, filepath.Join(keyDir, keys.PublicKeyFile)} {
			if err := os.Lchown(p, o.KeyOwner[0], o.KeyOwner[1]); err != nil {
				return acts, fmt.Errorf("give the key to the service user: %w", err)
			}
		}
	}
	return acts, nil
}

// PlaceholderMarker starts the server.yaml the Debian package installs; init replaces such
// a file without --force.
const PlaceholderMarker = "# flashline-server placeholder configuration"

func (o *Options) defaults() {
	if o.ConfigDir == "" {
		o.ConfigDir = "/etc/flashline"
	}
	if o.SrvDir == "" {
		o.SrvDir = "/srv/flashline"
	}
	if o.DataDir == "" {
		o.DataDir = "/var/lib/flashline"
	}
	if o.Mode == "" {
		o.Mode = "proxy"
	}
	if o.Packages == nil {
		o.Packages = dpkgFiles
	}
	if o.Interfaces == nil {
		o.Interfaces = systemInterfaces
	}
}

// dpkgFiles lists an installed package's files with dpkg -L, so that no versioned path is
// written into the code.
func dpkgFiles(ctx context.Context, pkg string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "dpkg", "-L", pkg).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("package %s is not installed (apt-get install %s): %s", pkg, pkg, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("list package %s: %w", pkg, err)
	}
	return strings.Fields(string(out)), nil
}

func findInPackage(ctx context.Context, list func(context.Context, string) ([]string, error), bf bootFile) (string, error) {
	files, err := list(ctx, bf.pkg)
	if err != nil {
		return "", fmt.Errorf("%s: %w", bf.name, err)
	}
	for _, f := range files {
		if filepath.Base(f) == bf.name && strings.Contains(f, bf.under) {
			return f, nil
		}
	}
	return "", fmt.Errorf("%s: not in package %s (dpkg -L %s)", bf.name, bf.pkg, bf.pkg)
}

func systemInterfaces() ([]Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	def := defaultRouteInterface()
	var out []Interface
	for _, i := range all {
		ifc := Interface{Name: i.Name, Up: i.Flags&net.FlagUp != 0, Loop: i.Flags&net.FlagLoopback != 0, Router: i.Name == def}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(n.String()); err == nil && p.Addr().Is4() {
					ifc.Addrs = append(ifc.Addrs, p)
				}
			}
		}
		out = append(out, ifc)
	}
	return out, nil
}

// defaultRouteInterface reads /proc/net/route for the interface of the 0.0.0.0/0 route.
func defaultRouteInterface() string {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "00000000" {
			return f[0]
		}
	}
	return ""
}

type chosen struct {
	Name   string
	Prefix netip.Prefix
}

func pickInterface(o Options) (chosen, error) {
	all, err := o.Interfaces()
	if err != nil {
		return chosen{}, err
	}
	var cands []Interface
	for _, i := range all {
		// Loopback only when asked for by name (a test line on one host).
		if len(i.Addrs) > 0 && (o.Interface == "" && !i.Loop || i.Name == o.Interface) {
			cands = append(cands, i)
		}
	}
	if o.Interface != "" && len(cands) == 0 {
		return chosen{}, fmt.Errorf("interface %s: not found or without an IPv4 address (give the line network's interface with -interface)", o.Interface)
	}
	if len(cands) > 1 {
		// A line host often has a plant uplink (the default route) and the line network:
		// the line is the other one.
		var notRouter []Interface
		for _, c := range cands {
			if !c.Router {
				notRouter = append(notRouter, c)
			}
		}
		if len(notRouter) == 1 {
			cands = notRouter
		} else {
			var names []string
			for _, c := range cands {
				names = append(names, c.Name)
			}
			return chosen{}, fmt.Errorf("several interfaces could be the line network (%s): choose one with -interface", strings.Join(names, ", "))
		}
	}
	if len(cands) == 0 {
		return chosen{}, errors.New("no interface with an IPv4 address: configure the line network first, or give -interface")
	}
	return chosen{Name: cands[0].Name, Prefix: cands[0].Addrs[0]}, nil
}

// copyFile copies src to dst unless dst already holds the same bytes.
func copyFile(src, dst string, mode os.FileMode, force bool) (Action, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return Action{dst, "failed"}, fmt.Errorf("read %s: %w", src, err)
	}
	return writeFile(dst, b, mode, force)
}

// writeFile writes b to path: created when missing, unchanged when equal, replaced when
// different only with force. The write goes through a temporary file, so that a file being
// served by TFTP is never seen half-written.
func writeFile(path string, b []byte, mode os.FileMode, force bool) (Action, error) {
	old, err := os.ReadFile(path)
	what := "created"
	switch {
	case err == nil && bytes.Equal(old, b):
		return Action{path, "unchanged"}, nil
	case err == nil && !force:
		return Action{path, "refused"}, fmt.Errorf("%s exists with other content: not replaced (use --force to overwrite it)", path)
	case err == nil:
		what = "replaced"
	case !errors.Is(err, os.ErrNotExist):
		return Action{path, "failed"}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return Action{path, "failed"}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return Action{path, "failed"}, err
	}
	_, err = io.Copy(tmp, bytes.NewReader(b))
	err = errors.Join(err, tmp.Chmod(mode), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return Action{path, "failed"}, fmt.Errorf("write %s: %w", path, err)
	}
	return Action{path, what}, nil
}

type configData struct {
	Options
	Iface                           string
	IP, Prefix, Range0, Range1, Key string
	Full                            bool
}

func renderConfig(o Options, c chosen, key string) ([]byte, error) {
	d := configData{Options: o, Iface: c.Name, IP: c.Prefix.Addr().String(), Prefix: c.Prefix.Masked().String(), Key: key, Full: o.Mode == "full"}
	// The pool: the upper part of the prefix, clear of this host and of the usual router and
	// static addresses at the bottom of a /24.
	lo, hi, err := pool(c.Prefix)
	if err != nil && d.Full {
		return nil, err
	}
	d.Range0, d.Range1 = lo, hi
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("server.yaml: %w", err)
	}
	return buf.Bytes(), nil
}

func pool(p netip.Prefix) (string, string, error) {
	bits := p.Bits()
	if bits > 28 || bits < 8 {
		return "", "", fmt.Errorf("full DHCP on %s: give the line network a prefix between /8 and /28", p)
	}
	base := p.Masked().Addr().As4()
	size := uint32(1) << (32 - bits)
	n := func(off uint32) string {
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		v += off
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
	}
	lo, hi := size/2, size-2
	if size >= 256 {
		lo, hi = 100, 199
	}
	return n(lo), n(hi), nil
}

var configTemplate = template.Must(template.New("server.yaml").Parse(`# yaml-language-server: $schema=/usr/share/flashline/server.schema.json
# flashline-server configuration written by 'flashline-server init' for this host
# (interface {{.Iface}}, {{.IP}} on {{.Prefix}}, {{if .Full}}full DHCP{{else}}proxy DHCP{{end}}).
# Every key is explained in docs/server.example.yaml; the walk-through is docs/line-host.md.
# After each edit: flashline-server check -config {{.ConfigDir}}/server.yaml

# Results database (SQLite), DHCP leases and the image hash cache. Created by the server.
data_dir: {{.DataDir}}

# Signs every job; agents are built with the public key beside it:
#   make PUBKEY={{.ConfigDir}}/keys/operator.pub
key_file: {{.Key}}

# Put the firmware images and the test scenarios here, and name them in images: and rules:.
images_dir: {{.SrvDir}}/images
scenarios_dir: {{.SrvDir}}/scenarios

http:
  enabled: true
  listen: ":8080"
  # How devices reach this server: on the kernel command line of every device.
  public_url: "http://{{.IP}}:8080"
  # With lpxelinux.0 as dhcp.boot.bios, kernel and initrd come over HTTP from here (faster
  # than TFTP); then also set tftp.pxelinux.http_base: "http://{{.IP}}:8080/boot/".
  boot_dir: {{.SrvDir}}/tftp

{{if .Full}}# Full DHCP: this host hands out the addresses on {{.Iface}}. Only when no other DHCP
# server runs on the line network.
dhcp:
  enabled: true
  mode: full
  interface: {{.Iface}}
  server_ip: {{.IP}}
  range_start: {{.Range0}}
  range_end: {{.Range1}}
  subnet: {{.Prefix}}
  # router: and dns: when devices need to reach beyond the line network.
  lease_time: 1h
  boot:
    bios: pxelinux.0
    efi64: syslinux.efi
{{else}}# Proxy DHCP: the plant's DHCP server keeps handing out addresses; this host only tells
# PXE clients where to boot from. To hand out addresses here instead (no other DHCP server
# on the line), run: flashline-server init --mode full --force
dhcp:
  enabled: true
  mode: proxy
  interface: {{.Iface}}
  server_ip: {{.IP}}
  boot:
    bios: pxelinux.0
    efi64: syslinux.efi
{{end}}
# TFTP with a pxelinux.cfg generated per device: provisioning until the device passes, then
# LOCALBOOT 0 until an operator resets it (dashboard, or flashline-server reset -mac M).
tftp:
  enabled: true
  listen: "{{.IP}}:69"
  interface: {{.Iface}}
  root: {{.SrvDir}}/tftp   # pxelinux.0, ldlinux.c32, syslinux.efi, ldlinux.e64, vmlinuz, initrd.gz
  pxelinux:
    kernel: vmlinuz
    initrd: initrd.gz
    consoles: [tty0, "ttyS0,115200"]
    # pxelinux on the first serial port too (a headless device's only console), as the kernel.
    serial_port: "0 115200"

jobs:
  ttl: 2h
  retry_after: 30s

# The images, by name (file under images_dir; sha256 and size are computed at startup when
# not given). Example:
#   images:
#     - name: gm-box-os
#       file: gm-box-os-1.4.img.zst
images: []

# The first rule whose match fits a device decides its scenario and image. Example:
#   rules:
#     - name: GM-Box
#       match: {product: "GM-Box*"}
#       scenario: gm-box.yaml
#       image: gm-box-os
#       target: {transport: mmc, min_size: 16GB}
rules: []

# Who may reset devices from the dashboard (none: the dashboard only shows, and resets are made
# with flashline-server reset here). Make the lines with flashline-server passwd -name NAME
# (a user's password hash) or -name NAME -token (a token for the MES). Example:
#   operators:
#     users: [{name: ana, password_hash: '$2a$12$...'}]
#     tokens: [{name: mes, sha256: ...}]
#     allowed_hosts: [line-1.plant.example]   # names browsers use for this host
`))
