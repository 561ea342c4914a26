package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flashline/flashline/protocol"

	"github.com/flashline/flashline/internal/yamldecode"
)

// CheckOptions says how far Check looks beyond the file itself.
type CheckOptions struct {
	// Host: the configuration is about to be served on this host. Files and directories it
	// names must exist (scenarios, images, TFTP root and boot files, keys), the scenarios the
	// rules use must pass lint, the interfaces must exist and at least one part must be on.
	Host bool
	// LintScenario lints one scenario file in the scenario language the agents run (with Host,
	// for every scenario a rule names). The server does not own that language, so the caller
	// supplies it (cmds/flashline-server passes the agent's linter); nil checks only that the
	// files exist.
	LintScenario func(path string) Problems
}

// CheckFile reads the file at path and returns its configuration (relative paths resolved
// against the file's directory) and every problem in it, each at its line and column. The
// configuration is nil only when the file cannot be read or is not YAML at all.
func CheckFile(path string, opts CheckOptions) (*Config, Problems) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Line: 1, Col: 1, Msg: fmt.Sprintf("read config: %v", err)}}
	}
	return check(path, b, filepath.Dir(path), opts)
}

// Check returns the configuration in b and every problem in it; file names it in messages.
// Relative paths stay relative (Host checks take them against the working directory).
func Check(file string, b []byte, opts CheckOptions) (*Config, Problems) {
	return check(file, b, "", opts)
}

func check(file string, b []byte, dir string, opts CheckOptions) (*Config, Problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, Problems{syntaxProblem(file, err)}
	}
	d := newDecoder(file)
	c := &Config{}
	if len(doc.Content) > 0 {
		d.decode(doc.Content[0], reflect.ValueOf(c).Elem(), "")
	}
	decodeProblems := d.problems
	c.setDefaults()
	var found []error
	found = append(found, flatten(c.Validate())...)
	found = append(found, d.offSections(c)...)
	if dir != "" {
		c.resolve(dir)
	}
	var extra Problems
	if opts.Host {
		var errs []error
		errs, extra = c.hostChecks(opts.LintScenario)
		found = append(found, errs...)
	}
	// A value that did not decode is reported once, by the decoder, not again by the checks
	// that then see its zero value.
	bad := map[[2]int]bool{}
	for _, p := range decodeProblems {
		bad[[2]int{p.Line, p.Col}] = true
	}
	ps := slices.Clone(decodeProblems)
	for _, err := range found {
		p := d.locate(err.Error())
		if !bad[[2]int{p.Line, p.Col}] {
			ps = append(ps, p)
		}
	}
	ps.sort()
	return c, append(ps, extra...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

func syntaxProblem(file string, err error) Problem {
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	return Problem{File: file, Line: line, Col: 1, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// keyPath matches the key path a check's message starts with ("rules[2]", "http.listen").
var keyPath = regexp.MustCompile(`^[a-z0-9_]+(\[\d+\])?(\.[a-z0-9_]+(\[\d+\])?)*`)

// locate turns a message of Validate or of the checks below into a Problem at the position of
// the key it is about. Every such message starts with its key path (the convention keeps the
// checks free of YAML nodes): "http.listen ...", or "rules[0] (name): scenario: ..." where
// the key after the name is looked up under the first path. A key not written in the file
// points at its section, a section not written at the file's start.
func (d *decoder) locate(msg string) Problem {
	p := Problem{File: d.file, Line: 1, Col: 1, Msg: msg}
	path := keyPath.FindString(msg)
	if path == "" {
		return p
	}
	cands := []string{path}
	rest := strings.TrimPrefix(msg[len(path):], " ")
	if strings.HasPrefix(rest, "(") {
		if i := strings.Index(rest, ")"); i > 0 {
			rest = strings.TrimPrefix(rest[i+1:], " ")
		}
	}
	if strings.HasPrefix(rest, ": ") {
		if sub := keyPath.FindString(rest[2:]); sub != "" {
			cands = append([]string{path + "." + sub}, cands...)
		}
	}
	for _, c := range cands {
		n := d.values[c]
		if n == nil {
			continue
		}
		// A message about a whole section or list is at its key, one about a value at the value.
		if k := d.keys[c]; k != nil && (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) {
			n = k
		}
		p.Line, p.Col = n.Line, max(n.Column, 1)
		return p
	}
	for c := path; c != ""; c = parentPath(c) {
		if n := d.keys[c]; n != nil {
			p.Line, p.Col = n.Line, max(n.Column, 1)
			return p
		}
		if n := d.values[c]; n != nil {
			p.Line, p.Col = n.Line, max(n.Column, 1)
			return p
		}
	}
	return p
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// offSections finds the sections (http, dhcp, tftp, sink and any later one with an enabled
// switch) that have settings but no `enabled:` key: they are off, which is rarely what
// whoever wrote the settings meant. An explicit `enabled: false` keeps a section off quietly.
func (d *decoder) offSections(c *Config) []error {
	var errs []error
	t := reflect.TypeOf(*c)
	for i := range t.NumField() {
		f := t.Field(i)
		name, ok := yamldecode.Name(f)
		if !ok || f.Type.Kind() != reflect.Struct {
			continue
		}
		if _, has := yamldecode.Fields(f.Type)["enabled"]; !has {
			continue
		}
		n := d.values[name]
		if n == nil || n.Kind != yaml.MappingNode || len(n.Content) == 0 || d.keys[name+".enabled"] != nil {
			continue
		}
		errs = append(errs, fmt.Errorf(`%s: has settings but no "enabled: true", so it is off (write enabled: true, or enabled: false to keep it off)`, name))
	}
	return errs
}

// validateValues checks ranges, addresses and ports and the values of a few enumerations
// that Validate does not; called by Validate.
func (c *Config) validateValues() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, l := range []struct {
		key, v string
		// splitChecked: Validate already reports a value without a port.
		splitChecked bool
	}{
		{"http.listen", c.HTTP.Listen, c.HTTP.Enabled},
		{"dhcp.listen", c.DHCP.Listen, false},
		{"dhcp.pxe_listen", c.DHCP.PXEListen, false},
		{"tftp.listen", c.TFTP.Listen, false},
		{"sink.listen", c.Sink.Listen, c.Sink.Enabled},
	} {
		if l.v == "" {
			continue
		}
		if err := checkListen(l.v); err != nil && (!l.splitChecked || !errors.Is(err, errNoPort)) {
			bad("%s %q: %v", l.key, l.v, err)
		}
	}
	if u := c.HTTP.PublicURL; u != "" && (strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
		if pu, err := url.Parse(u); err != nil || pu.Host == "" {
			bad("http.public_url %q: not a URL with a host", u)
		} else if p := pu.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				bad("http.public_url %q: port %s out of range (1-65535)", u, p)
			}
		}
	}
	if c.TFTP.MaxTransfers < 0 {
		bad("tftp.max_transfers %d: must not be negative", c.TFTP.MaxTransfers)
	}
	if c.Jobs.RetryAfter < 0 {
		bad("jobs.retry_after %s: must not be negative", c.Jobs.RetryAfter)
	}
	if c.DHCP.LeaseTime < 0 {
		bad("dhcp.lease_time %s: must not be negative", c.DHCP.LeaseTime)
	}
	if c.DHCP.Enabled && c.DHCP.Mode == "full" {
		lo, err1 := netip.ParseAddr(c.DHCP.RangeStart)
		hi, err2 := netip.ParseAddr(c.DHCP.RangeEnd)
		if err1 == nil && err2 == nil {
			switch {
			case !lo.Is4() || !hi.Is4():
				bad("dhcp.range_start %q: the range must be IPv4 addresses", c.DHCP.RangeStart)
			case hi.Less(lo):
				bad("dhcp.range_end %q: before range_start %q", c.DHCP.RangeEnd, c.DHCP.RangeStart)
			}
			if pfx, err := netip.ParsePrefix(c.DHCP.Subnet); err == nil && (!pfx.Contains(lo) || !pfx.Contains(hi)) {
				bad("dhcp.subnet %q: does not contain the range %s-%s", c.DHCP.Subnet, lo, hi)
			}
		}
	}
	for i, r := range c.Rules {
		if t := r.Target.Transport; t != "" && !slices.Contains(protocol.Transports(), t) {
			bad("rules[%d] (%s): target.transport %q: want one of %s%s", i, r.Name, t, strings.Join(protocol.Transports(), ", "), yamldecode.Suggest(t, protocol.Transports()))
		}
	}
	return errs
}

var errNoPort = errors.New("want host:port or :port")

// checkListen accepts host:port with a numeric port (0 picks a free one) and a host that is
// empty, an IP address or a name.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errNoPort
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("port %q is not a number", port)
	}
	if n < 0 || n > 65535 {
		return fmt.Errorf("port %d out of range (0-65535)", n)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("host %q is not an address or a name", host)
	}
	return nil
}

// hostChecks are the checks against this host: what the configuration names must exist.
// Problems inside the rules' scenario files come back as extra, at their own files' positions.
func (c *Config) hostChecks(lint func(path string) Problems) ([]error, Problems) {
	var errs []error
	var extra Problems
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !c.HTTP.Enabled && !c.DHCP.Enabled && !c.TFTP.Enabled && !c.Sink.Enabled {
		bad("nothing to serve: enable http, dhcp, tftp or sink (enabled: true)")
	}
	isDir := func(key, p string) bool {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			bad("%s %q: %v", key, p, pathErr(err))
			return false
		case !fi.IsDir():
			bad("%s %q: not a directory", key, p)
			return false
		}
		return true
	}
	isFile := func(key, p string) {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			bad("%s %q: %v", key, p, pathErr(err))
		case !fi.Mode().IsRegular():
			bad("%s %q: not a regular file", key, p)
		}
	}
	if c.DataDir != "" {
		if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
			bad("data_dir %q: not a directory", c.DataDir)
		}
	}
	if c.HTTP.Enabled || c.TFTP.Enabled {
		if c.KeyFile != "" {
			isFile("key_file", c.KeyFile)
		}
	}
	if c.HTTP.Enabled {
		if c.HTTP.TLSCert != "" {
			isFile("http.tls_cert", c.HTTP.TLSCert)
		}
		if c.HTTP.TLSKey != "" {
			isFile("http.tls_key", c.HTTP.TLSKey)
		}
		if c.HTTP.BootDir != "" {
			isDir("http.boot_dir", c.HTTP.BootDir)
		}
		if c.Operators.ClientCA != "" {
			isFile("operators.client_ca", c.Operators.ClientCA)
		}
		imagesOK := c.ImagesDir != "" && isDir("images_dir", c.ImagesDir)
		if imagesOK && On(c.HTTP.API) {
			for i, im := range c.Images {
				if CheckRelPath(im.File) == nil {
					isFile(fmt.Sprintf("images[%d] (%s): file", i, im.Name), filepath.Join(c.ImagesDir, filepath.FromSlash(im.File)))
				}
			}
		}
		scenOK := c.ScenariosDir != "" && isDir("scenarios_dir", c.ScenariosDir)
		if scenOK && On(c.HTTP.API) {
			linted := map[string]bool{}
			for i, r := range c.Rules {
				if CheckRelPath(r.Scenario) != nil {
					continue
				}
				p := filepath.Join(c.ScenariosDir, filepath.FromSlash(r.Scenario))
				if _, err := os.Stat(p); err != nil {
					bad("rules[%d] (%s): scenario %q: %v in scenarios_dir %s", i, r.Name, r.Scenario, pathErr(err), c.ScenariosDir)
					continue
				}
				if linted[p] {
					continue
				}
				linted[p] = true
				if lint == nil {
					continue
				}
				if list := lint(p); len(list) > 0 {
					bad("rules[%d] (%s): scenario %q fails lint (%d problems, listed after this file's)", i, r.Name, r.Scenario, len(list))
					extra = append(extra, list...)
				}
			}
		}
	}
	if c.TFTP.Enabled && c.TFTP.Root != "" && isDir("tftp.root", c.TFTP.Root) {
		in := func(key, name string) { isFile(key, filepath.Join(c.TFTP.Root, filepath.FromSlash(name))) }
		bios, biosKey := c.DHCP.Boot.BIOS, "dhcp.boot.bios: boot file"
		if bios == "" {
			bios, biosKey = "pxelinux.0", "tftp.root: boot file"
		}
		if !strings.Contains(bios, "://") {
			in(biosKey, bios)
			in("tftp.root: boot file", "ldlinux.c32")
		}
		if e := c.DHCP.Boot.EFI64; e != "" && !strings.Contains(e, "://") {
			in("dhcp.boot.efi64: boot file", e)
			in("tftp.root: boot file", "ldlinux.e64")
		}
		p := c.TFTP.PXE
		if p.HTTPBase == "" {
			if k := cmpOr(p.Kernel, "vmlinuz"); !strings.Contains(k, "://") {
				in("tftp.pxelinux.kernel", k)
			}
			if r := cmpOr(p.Initrd, "initrd.gz"); !strings.Contains(r, "://") {
				in("tftp.pxelinux.initrd", r)
			}
		}
	}
	for _, ifc := range []struct {
		key, name string
		on        bool
	}{{"dhcp.interface", c.DHCP.Interface, c.DHCP.Enabled}, {"tftp.interface", c.TFTP.Interface, c.TFTP.Enabled}} {
		if !ifc.on || ifc.name == "" {
			continue
		}
		if _, err := net.InterfaceByName(ifc.name); err != nil {
			var have []string
			if all, err := net.Interfaces(); err == nil {
				for _, i := range all {
					have = append(have, i.Name)
				}
			}
			bad("%s %q: no such network interface on this host%s", ifc.key, ifc.name, suggestOrList(ifc.name, have))
		}
	}
	return errs, extra
}

// pathErr drops the path os errors repeat (the message already quotes it).
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("does not exist")
		}
		return pe.Err
	}
	return err
}
