// Package cmdline reads the Flashline parameters from the kernel command line (/proc/cmdline):
// the line server's URL, the MAC of the NIC the device netbooted from (BOOTIF, which pxelinux
// appends with IPAPPEND 2), debug mode and the other flashline.* switches documented in
// docs/kernel-cmdline.md.
//
// Parsing never fails as a whole: the command line comes from a boot server the agent cannot
// argue with, so a bad value is reported and ignored while the good ones are still used.
package cmdline

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode"

	ucmdline "github.com/u-root/u-root/pkg/cmdline"

	"github.com/flashline/flashline/protocol"
)

// The parameter names (contract: documented in docs/kernel-cmdline.md and written by the line
// server's pxelinux.cfg).
const (
	KeyServer  = "flashline.server"  // base URL of the line server, e.g. http://10.0.2.2:8080
	KeyBootIF  = "BOOTIF"            // 01-aa-bb-cc-dd-ee-ff: MAC of the PXE NIC
	KeyDebug   = "flashline.debug"   // offer a shell and print more when something fails
	KeyModules = "flashline.modules" // extra kernel modules to load, comma-separated
	KeyIface   = "flashline.iface"   // network interface to use instead of BOOTIF's
	KeyNoMods  = "flashline.nomodules"
)

// Params are the Flashline parameters found on a kernel command line.
type Params struct {
	// Server is the line server's base URL; empty when not given.
	Server string
	// BootIF is the MAC address of the NIC the firmware netbooted from; nil when not given.
	BootIF net.HardwareAddr
	// Debug asks for verbose output and an operator shell when the journey cannot go on.
	Debug bool
	// Modules are extra kernel modules to load besides those matched to the hardware.
	Modules []string
	// Iface names the network interface to configure, overriding BootIF.
	Iface string
	// NoModules turns automatic modalias-based module loading off (the always-load list and
	// Modules are still loaded).
	NoModules bool
	// Raw holds every key=value of the command line (flags without '=' have the value "1"),
	// keys as written; see Flag for the kernel's '-' == '_' rule.
	Raw map[string]string
}

// Read parses /proc/cmdline.
func Read() (Params, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return Params{Raw: map[string]string{}}, fmt.Errorf("read kernel command line: %w", err)
	}
	return Parse(string(b))
}

// Parse parses a kernel command line. It returns the parameters it could read together with
// an error listing every value it had to ignore.
func Parse(s string) (Params, error) {
	p := Params{Raw: map[string]string{}}
	var errs []error
	for _, tok := range Split(s) {
		key, val, hasVal := strings.Cut(tok, "=")
		if !hasVal {
			val = "1"
		}
		p.Raw[key] = val
		switch canonical(key) {
		case canonical(KeyServer):
			u, err := ParseServerURL(val)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				continue
			}
			p.Server = u
		case KeyBootIF:
			mac, err := ParseBootIF(val)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				continue
			}
			p.BootIF = mac
		case canonical(KeyDebug):
			b, err := parseBool(val, hasVal)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				continue
			}
			p.Debug = b
		case canonical(KeyNoMods):
			b, err := parseBool(val, hasVal)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				continue
			}
			p.NoModules = b
		case canonical(KeyModules):
			for _, m := range strings.Split(val, ",") {
				m = strings.TrimSpace(m)
				if m == "" {
					continue
				}
				if !validModuleName(m) {
					errs = append(errs, fmt.Errorf("%s: %q is not a module name", key, m))
					continue
				}
				p.Modules = append(p.Modules, m)
			}
		case canonical(KeyIface):
			if !validIfaceName(val) {
				errs = append(errs, fmt.Errorf("%s: %q is not an interface name", key, val))
				continue
			}
			p.Iface = val
		}
	}
	return p, errors.Join(errs...)
}

// Flag returns the value of any parameter, treating '-' and '_' in its name as equal as the
// kernel does.
func (p Params) Flag(name string) (string, bool) {
	if v, ok := p.Raw[name]; ok {
		return v, true
	}
	c := canonical(name)
	for k, v := range p.Raw {
		if canonical(k) == c {
			return v, true
		}
	}
	return "", false
}

// ModuleParams returns the "param=value ..." options given for a module on the command line as
// module.param=value: the kernel only applies those to built-in code, for a loadable module
// whoever loads it must pass them (as modprobe does).
func (p Params) ModuleParams(module string) string {
	cl := ucmdline.CmdLine{AsMap: map[string]string{}}
	for k, v := range p.Raw {
		cl.AsMap[canonical(k)] = v
	}
	return strings.TrimSpace(cl.FlagsForModule(module))
}

// Split cuts a kernel command line into parameters the way the kernel does: on white space
// outside double quotes, with the quotes removed; "--" ends the kernel's parameters (the rest
// belongs to init) and so ends the list.
func Split(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	flush := func() bool {
		if !have {
			return true
		}
		tok := cur.String()
		cur.Reset()
		have = false
		if tok == "--" {
			return false
		}
		out = append(out, tok)
		return true
	}
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' || r == 0):
			if !flush() {
				return out
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	flush()
	return out
}

// ParseBootIF parses pxelinux's BOOTIF value: the ARP hardware type (01 for Ethernet), then
// the MAC, bytes separated by '-'. A bare MAC (with '-' or ':') is accepted too.
func ParseBootIF(v string) (net.HardwareAddr, error) {
	parts := strings.Split(strings.ReplaceAll(v, ":", "-"), "-")
	if len(parts) == 7 {
		if parts[0] != "01" {
			return nil, fmt.Errorf("hardware type %q is not Ethernet (01)", parts[0])
		}
		parts = parts[1:]
	}
	if len(parts) != 6 {
		return nil, fmt.Errorf("%q is not 01-aa-bb-cc-dd-ee-ff", v)
	}
	mac := make(net.HardwareAddr, 6)
	for i, b := range parts {
		if len(b) != 2 {
			return nil, fmt.Errorf("%q is not 01-aa-bb-cc-dd-ee-ff", v)
		}
		n, err := strconv.ParseUint(b, 16, 8)
		if err != nil {
			return nil, fmt.Errorf("%q is not 01-aa-bb-cc-dd-ee-ff", v)
		}
		mac[i] = byte(n)
	}
	if mac[0]&1 != 0 {
		// A NIC's own address is never a group address; this also rejects a BOOTIF whose
		// hardware type got separated from a truncated MAC ("01-aa-bb-cc-dd-ee").
		return nil, fmt.Errorf("%q is a multicast address, not a NIC's", v)
	}
	return mac, nil
}

// ParseServerURL checks a line server base URL: http or https with a host, no query or
// fragment. The returned form has no trailing slash so that paths can be appended. Its errors
// match protocol.ErrServerURL (errors.Is).
func ParseServerURL(v string) (string, error) {
	u, err := parseServerURL(v)
	if err != nil {
		return "", protocol.BadServerURL(err)
	}
	return u, nil
}

func parseServerURL(v string) (string, error) {
	if strings.ContainsFunc(v, unicode.IsSpace) {
		return "", fmt.Errorf("URL %q contains white space", v)
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", fmt.Errorf("bad URL %q: %w", v, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("URL %q: scheme must be http or https", v)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("URL %q has no host", v)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("URL %q: no user, query or fragment allowed", v)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

func parseBool(v string, hasVal bool) (bool, error) {
	if !hasVal || v == "" {
		return true, nil
	}
	switch strings.ToLower(v) {
	case "1", "y", "yes", "on", "true":
		return true, nil
	case "0", "n", "no", "off", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use 1 or 0)", v)
}

func canonical(k string) string { return strings.ReplaceAll(k, "-", "_") }

func validModuleName(m string) bool {
	if len(m) > 55 {
		return false
	}
	for _, r := range m {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func validIfaceName(n string) bool {
	// Linux IFNAMSIZ is 16 including the NUL; '/' and white space are forbidden.
	if n == "" || len(n) > 15 || n == "." || n == ".." {
		return false
	}
	return !strings.ContainsAny(n, "/ \t\n:")
}
