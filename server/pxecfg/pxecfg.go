// Package pxecfg writes the pxelinux configuration each device gets over
// TFTP: the Flashline provisioning entry until the device has been
// provisioned, then a local boot, until an operator resets the device.
//
// pxelinux (and syslinux.efi, which reads the same files) asks for
// "pxelinux.cfg/01-<mac>" first and "pxelinux.cfg/default" last. A
// [Generator] answers both, so it plugs into the TFTP server as its virtual
// file callback:
//
//	gen, err := pxecfg.New(pxecfg.Config{ServerURL: "http://10.0.0.1:8080"},
//		pxecfg.Deps{State: store})
//	tftpSrv, err := tftp.New(tftpCfg, tftp.Deps{Virtual: gen.TFTPFile})
//
// What is generated:
//
//	Provision:  KERNEL, INITRD, APPEND with console=, flashline.server=URL and
//	            the extra arguments, and IPAPPEND 2 so that the kernel command
//	            line carries BOOTIF=01-<mac> of the NIC that booted.
//	LocalBoot:  LOCALBOOT 0. Under BIOS pxelinux this hands the boot back to
//	            the BIOS, which boots the next device in its order (the disk).
//	            Under UEFI, syslinux.efi implements LOCALBOOT by exiting with
//	            an error, so the firmware moves on to the next entry of
//	            BootOrder; the network entry must therefore be followed by the
//	            disk's entry. The same file serves both.
//
// With lpxelinux.0 (BIOS, HTTP-capable) set [Config.HTTPBase] so the kernel
// and initrd are fetched over HTTP, which is several times faster than TFTP.
package pxecfg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"strings"
)

// Mode is what a device should boot next.
type Mode int

const (
	// Unknown means the state store has no record of the device; the
	// generator then uses [Config.DefaultMode].
	Unknown Mode = iota
	// Provision boots the Flashline kernel and initramfs.
	Provision
	// LocalBoot boots the device's own disk.
	LocalBoot
)

func (m Mode) String() string {
	switch m {
	case Provision:
		return "provision"
	case LocalBoot:
		return "localboot"
	default:
		return "unknown"
	}
}

// DeviceState tells which mode a device, identified by the MAC address of the
// NIC it netboots from, is in. The line server's result store implements it.
type DeviceState interface {
	BootMode(ctx context.Context, mac net.HardwareAddr) (Mode, error)
}

// Config is the content of the generated files.
type Config struct {
	// ServerURL is passed to the agent as flashline.server=URL. Required.
	ServerURL string
	// Kernel and Initrd are paths on the TFTP server relative to its root
	// (defaults "vmlinuz" and "initrd.gz"), or complete http:// URLs.
	Kernel, Initrd string
	// HTTPBase, when set (for lpxelinux.0), is prefixed to Kernel and
	// Initrd when they are not already URLs, e.g. "http://10.0.0.1:8080/boot/".
	HTTPBase string
	// Consoles become console= arguments, in order; the last one is
	// /dev/console. Nil means {"tty0", "ttyS0,115200"}; an empty non-nil
	// slice means none.
	Consoles []string
	// SerialPort, when set (e.g. "0 115200"), adds a SERIAL directive so
	// that pxelinux's own messages also go to the serial console.
	SerialPort string
	// ExtraArgs are appended to the kernel command line verbatim, e.g.
	// "quiet" or "flashline.debug=1".
	ExtraArgs []string
	// DefaultMode is used for devices the state store does not know and
	// for the "default" file. Default Provision: an unknown device on the
	// line is one to provision.
	DefaultMode Mode
	// ErrorMode is used when the state store fails. Default LocalBoot:
	// when in doubt, do not risk reflashing a finished device.
	ErrorMode Mode
}

// Deps are the generator's collaborators.
type Deps struct {
	// State is required.
	State DeviceState
	// Logger default slog.Default().
	Logger *slog.Logger
	// Station, when set, names the station a MAC sits at (from the DHCP relay information
	// or the configured map; "" when not known), written into the file's comment so that a
	// capture or a look at the TFTP log tells where the device is.
	Station func(mac net.HardwareAddr) string
}

// Generator produces pxelinux configuration files.
type Generator struct {
	cfg     Config
	state   DeviceState
	log     *slog.Logger
	station func(net.HardwareAddr) string
}

// New checks cfg and returns a Generator.
func New(cfg Config, deps Deps) (*Generator, error) {
	if deps.State == nil {
		return nil, errors.New("pxecfg: Deps.State is required")
	}
	u, err := url.Parse(cfg.ServerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pxecfg: ServerURL %q is not an http(s) URL", cfg.ServerURL)
	}
	if cfg.Kernel == "" {
		cfg.Kernel = "vmlinuz"
	}
	if cfg.Initrd == "" {
		cfg.Initrd = "initrd.gz"
	}
	if cfg.Consoles == nil {
		cfg.Consoles = []string{"tty0", "ttyS0,115200"}
	}
	if cfg.DefaultMode == Unknown {
		cfg.DefaultMode = Provision
	}
	if cfg.ErrorMode == Unknown {
		cfg.ErrorMode = LocalBoot
	}
	for _, s := range append(append([]string{cfg.ServerURL, cfg.Kernel, cfg.Initrd, cfg.HTTPBase, cfg.SerialPort}, cfg.Consoles...), cfg.ExtraArgs...) {
		// A newline would start a new directive in the file.
		if strings.ContainsAny(s, "\r\n") {
			return nil, fmt.Errorf("pxecfg: configuration value %q contains a line break", s)
		}
	}
	if cfg.HTTPBase != "" && !strings.HasSuffix(cfg.HTTPBase, "/") {
		cfg.HTTPBase += "/"
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Generator{cfg: cfg, state: deps.State, log: log.With("component", "pxecfg"), station: deps.Station}, nil
}

// ForMAC returns the configuration file for the device with this MAC and the
// mode it encodes. A state store failure is logged and answered with
// Config.ErrorMode rather than an error, because a missing file would make
// pxelinux fall through to "default" and provision the device.
func (g *Generator) ForMAC(ctx context.Context, mac net.HardwareAddr) ([]byte, Mode) {
	mode, err := g.state.BootMode(ctx, mac)
	switch {
	case err != nil:
		g.log.Error("device state lookup failed", "mac", mac.String(), "err", err, "serving", g.cfg.ErrorMode.String())
		mode = g.cfg.ErrorMode
	case mode != Provision && mode != LocalBoot:
		mode = g.cfg.DefaultMode
	}
	who := "device " + mac.String()
	if g.station != nil {
		if st := g.station(mac); st != "" {
			// A line break would end the comment and start a directive.
			who += " at station " + strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return '_'
				}
				return r
			}, st)
		}
	}
	return g.render(mode, who), mode
}

// Default returns the "default" file, used by pxelinux when no per-MAC file
// exists.
func (g *Generator) Default() []byte {
	return g.render(g.cfg.DefaultMode, "devices without a file of their own")
}

// TFTPFile serves "pxelinux.cfg/01-<mac>" and "pxelinux.cfg/default" (also
// under any directory prefix, such as "efi64/pxelinux.cfg/...", which
// syslinux uses when its boot file lives in a subdirectory). Every other name
// is an error wrapping fs.ErrNotExist. Its signature matches
// tftp.VirtualFunc.
func (g *Generator) TFTPFile(ctx context.Context, name string) ([]byte, error) {
	dir, base := splitCfg(name)
	if dir == "" {
		return nil, fmt.Errorf("pxecfg: %s: %w", name, fs.ErrNotExist)
	}
	if base == "default" {
		return g.Default(), nil
	}
	mac, ok := ParseConfigName(base)
	if !ok {
		// UUID and hex-IP names: not ours, pxelinux will try the next.
		return nil, fmt.Errorf("pxecfg: %s: %w", name, fs.ErrNotExist)
	}
	b, mode := g.ForMAC(ctx, mac)
	g.log.Info("served pxelinux config", "mac", mac.String(), "mode", mode.String(), "file", name)
	return b, nil
}

// splitCfg returns the directory and base name when name is a file directly
// inside a "pxelinux.cfg" directory.
func splitCfg(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", ""
	}
	dir, base = name[:i], name[i+1:]
	if dir != "pxelinux.cfg" && !strings.HasSuffix(dir, "/pxelinux.cfg") {
		return "", ""
	}
	return dir, base
}

// ParseConfigName parses pxelinux's per-MAC file name "01-aa-bb-cc-dd-ee-ff"
// (ARP hardware type 1, Ethernet, then the MAC in lower-case hex). Upper case
// is accepted too.
func ParseConfigName(base string) (net.HardwareAddr, bool) {
	if len(base) != len("01-aa-bb-cc-dd-ee-ff") || !strings.HasPrefix(base, "01-") {
		return nil, false
	}
	mac, err := net.ParseMAC(base[3:])
	if err != nil || len(mac) != 6 {
		return nil, false
	}
	return mac, true
}

// ConfigName is the per-MAC file name pxelinux asks for, relative to the
// TFTP root: "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff".
func ConfigName(mac net.HardwareAddr) string {
	return "pxelinux.cfg/01-" + strings.ReplaceAll(strings.ToLower(mac.String()), ":", "-")
}

func (g *Generator) render(mode Mode, who string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by the Flashline line server for %s: %s.\n", who, mode)
	if g.cfg.SerialPort != "" {
		fmt.Fprintf(&b, "SERIAL %s\n", g.cfg.SerialPort)
	}
	// No prompt and no timeout: boot the single entry at once.
	b.WriteString("PROMPT 0\nTIMEOUT 0\n")
	if mode == LocalBoot {
		b.WriteString("DEFAULT local\n\nLABEL local\n")
		b.WriteString("  # BIOS: boot the next device. UEFI (syslinux.efi): exit to the next BootOrder entry.\n")
		b.WriteString("  LOCALBOOT 0\n")
		return b.Bytes()
	}
	b.WriteString("DEFAULT flashline\n\nLABEL flashline\n")
	fmt.Fprintf(&b, "  KERNEL %s\n", g.location(g.cfg.Kernel))
	fmt.Fprintf(&b, "  INITRD %s\n", g.location(g.cfg.Initrd))
	args := make([]string, 0, len(g.cfg.Consoles)+1+len(g.cfg.ExtraArgs))
	for _, c := range g.cfg.Consoles {
		args = append(args, "console="+c)
	}
	args = append(args, "flashline.server="+g.cfg.ServerURL)
	args = append(args, g.cfg.ExtraArgs...)
	fmt.Fprintf(&b, "  APPEND %s\n", strings.Join(args, " "))
	// 2 = BOOTIF=01-<mac>: the agent brings up the NIC that netbooted.
	b.WriteString("  IPAPPEND 2\n")
	return b.Bytes()
}

func (g *Generator) location(p string) string {
	if strings.Contains(p, "://") || g.cfg.HTTPBase == "" {
		return p
	}
	return g.cfg.HTTPBase + strings.TrimLeft(p, "/")
}
