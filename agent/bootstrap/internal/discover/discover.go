// Package discover finds the line server when the kernel command line names none, as on a
// device booted from a discovery stick rather than by the line's PXE server. The methods,
// tried in order, come from flashline.discover on the kernel command line:
//
//	dhcp                 the DHCP lease: an http(s) URL as boot file name (option 67 or the
//	                     file field) gives the server's address; else, on the default port,
//	                     the next-server (siaddr, as pxelinux would use for TFTP), the TFTP
//	                     server of option 66, or the DHCP server itself (option 54): on a
//	                     line host that runs DHCP, TFTP and HTTP together these are all it
//	dns:NAME[:PORT]      resolve NAME by unicast DNS (the lease's name servers), or by a
//	                     one-shot multicast DNS query on the boot NIC when NAME ends in .local
//	mdns:NAME[:PORT]     always by multicast DNS
//
// The default is "dhcp,dns:flashline-server.local". The answer is a base URL such as
// http://10.0.0.1:8080.
package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Param is the kernel command line parameter that lists the methods.
const Param = "flashline.discover"

// DefaultSpec is used when Param is absent.
const DefaultSpec = "dhcp,dns:flashline-server.local"

// DefaultPort is the line server's default HTTP port.
const DefaultPort = 8080

// Kind is a discovery method.
type Kind string

const (
	DHCP Kind = "dhcp"
	DNS  Kind = "dns"
	MDNS Kind = "mdns"
)

// Method is one parsed entry of the spec.
type Method struct {
	Kind Kind
	Name string // host name for DNS and MDNS
	Port int    // 0: DefaultPort
}

func (m Method) String() string {
	s := string(m.Kind)
	if m.Name != "" {
		s += ":" + m.Name
	}
	if m.Port != 0 {
		s += ":" + strconv.Itoa(m.Port)
	}
	return s
}

// ParseSpec parses a comma-separated list of methods.
func ParseSpec(spec string) ([]Method, error) {
	if strings.TrimSpace(spec) == "" {
		spec = DefaultSpec
	}
	var out []Method
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		kind, rest, _ := strings.Cut(item, ":")
		m := Method{Kind: Kind(strings.ToLower(kind))}
		switch m.Kind {
		case DHCP:
			if rest != "" {
				p, err := parsePort(rest)
				if err != nil {
					return nil, fmt.Errorf("%s %q: %w", Param, item, err)
				}
				m.Port = p
			}
		case DNS, MDNS:
			name, port, hasPort := strings.Cut(rest, ":")
			if err := checkName(name); err != nil {
				return nil, fmt.Errorf("%s %q: %w", Param, item, err)
			}
			m.Name = strings.ToLower(strings.TrimSuffix(name, "."))
			if hasPort {
				p, err := parsePort(port)
				if err != nil {
					return nil, fmt.Errorf("%s %q: %w", Param, item, err)
				}
				m.Port = p
			}
		default:
			return nil, fmt.Errorf("%s %q: unknown method (want dhcp, dns:NAME or mdns:NAME)", Param, item)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s %q: no method", Param, spec)
	}
	return out, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return p, nil
}

// checkName accepts DNS host names: dot-separated labels of letters, digits and '-'.
func checkName(name string) error {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return errors.New("missing or overlong host name")
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("bad host name %q", name)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("bad host name %q", name)
			}
		}
	}
	return nil
}

// Lease is what the DHCP answer said, as far as finding the server goes.
type Lease struct {
	NextServer net.IP // siaddr
	BootFile   string // option 67, else the file field
	TFTPServer string // option 66: a name or an address
	ServerID   net.IP // option 54: the DHCP server that answered
}

// Resolver resolves a host name to IPv4 addresses.
type Resolver interface {
	LookupIPv4(ctx context.Context, name string) ([]net.IP, error)
}

// Finder tries the methods.
type Finder struct {
	Lease Lease
	// DNS resolves by unicast DNS; nil means the system resolver.
	DNS Resolver
	// MDNS resolves .local names; nil means a one-shot query on any interface.
	MDNS Resolver
	// Timeout bounds each method; zero means 5s.
	Timeout time.Duration
	// Logf, when set, is told what each method found or why it failed.
	Logf func(format string, args ...any)
}

// Find returns the base URL of the first method that names a server.
func (f Finder) Find(ctx context.Context, methods []Method) (string, error) {
	timeout := f.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	var errs []error
	for _, m := range methods {
		mctx, cancel := context.WithTimeout(ctx, timeout)
		u, err := f.try(mctx, m)
		cancel()
		if err == nil {
			f.logf("discover: %s found the line server at %s", m, u)
			return u, nil
		}
		f.logf("discover: %s: %v", m, err)
		errs = append(errs, fmt.Errorf("%s: %w", m, err))
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("find the line server: %w", errors.Join(errs...))
}

func (f Finder) logf(format string, args ...any) {
	if f.Logf != nil {
		f.Logf(format, args...)
	}
}

func (f Finder) try(ctx context.Context, m Method) (string, error) {
	port := m.Port
	if port == 0 {
		port = DefaultPort
	}
	switch m.Kind {
	case DHCP:
		u, why, err := FromLeaseWhy(f.Lease, port)
		if err == nil {
			f.logf("discover: dhcp: the line server is taken from %s", why)
		}
		return u, err
	case DNS, MDNS:
		r := f.DNS
		if m.Kind == MDNS || strings.HasSuffix(m.Name, ".local") {
			r = f.MDNS
			if r == nil {
				r = &MDNSResolver{}
			}
		} else if r == nil {
			r = systemResolver{}
		}
		ips, err := r.LookupIPv4(ctx, m.Name)
		if err != nil {
			return "", err
		}
		if len(ips) == 0 {
			return "", fmt.Errorf("%s has no IPv4 address", m.Name)
		}
		return baseURL("http", ips[0].String(), port), nil
	}
	return "", fmt.Errorf("unknown method %q", m.Kind)
}

// FromLease derives the server's URL from a DHCP lease, in the order of how directly the
// answer names it: an http(s) boot file, the next-server, option 66, the DHCP server.
func FromLease(l Lease, port int) (string, error) {
	u, _, err := FromLeaseWhy(l, port)
	return u, err
}

// FromLeaseWhy is FromLease that also says which part of the answer gave the URL, for the
// console: a guessed server must be visibly a guess.
func FromLeaseWhy(l Lease, port int) (u, why string, err error) {
	if pu, err := url.Parse(strings.TrimSpace(l.BootFile)); err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != "" {
		return pu.Scheme + "://" + pu.Host, "the DHCP boot file URL", nil
	}
	if ip := usable(l.NextServer); ip != nil {
		return baseURL("http", ip.String(), port), "the DHCP next-server (siaddr)", nil
	}
	if t := strings.TrimSpace(l.TFTPServer); t != "" {
		if ip := usable(net.ParseIP(t)); ip != nil {
			return baseURL("http", ip.String(), port), "the DHCP TFTP server (option 66)", nil
		}
		if checkName(t) == nil {
			return baseURL("http", strings.ToLower(strings.TrimSuffix(t, ".")), port), "the DHCP TFTP server name (option 66)", nil
		}
	}
	if ip := usable(l.ServerID); ip != nil {
		return baseURL("http", ip.String(), port), "the DHCP server that booted this device (option 54)", nil
	}
	return "", "", errors.New("the DHCP answer names no boot server (no http boot file, next-server, option 66 or server identifier)")
}

func usable(ip net.IP) net.IP {
	if ip4 := ip.To4(); ip4 != nil && !ip4.IsUnspecified() && !ip4.Equal(net.IPv4bcast) {
		return ip4
	}
	return nil
}

func baseURL(scheme, host string, port int) string {
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

type systemResolver struct{}

func (systemResolver) LookupIPv4(ctx context.Context, name string) ([]net.IP, error) {
	return net.DefaultResolver.LookupIP(ctx, "ip4", name)
}
