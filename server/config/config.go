// Package config loads and validates flashline-server's single YAML configuration file. Every
// part of the server (DHCP, TFTP, HTTP and, inside HTTP, the API, images, scenarios, dashboard
// and metrics) has its own section or switch, so a line can run any subset of it beside the
// plant's own services.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	// DataDir holds the results database. Created when missing.
	DataDir string `yaml:"data_dir"`
	// KeyFile is the operator's ed25519 private key that signs jobs. Empty means unsigned
	// development mode: only agents built without a public key accept the jobs.
	KeyFile string `yaml:"key_file"`
	// ImagesDir and ScenariosDir are served under /images/ and /scenarios/ and are where the
	// rules' image and scenario files are looked up.
	ImagesDir    string `yaml:"images_dir"`
	ScenariosDir string `yaml:"scenarios_dir"`

	HTTP HTTP `yaml:"http"`
	DHCP DHCP `yaml:"dhcp"`
	TFTP TFTP `yaml:"tftp"`
	Sink Sink `yaml:"sink"`
	// Limits bound every resource a client can make the server hold (limits.go).
	Limits Limits `yaml:"limits"`

	Jobs   Jobs    `yaml:"jobs"`
	Images []Image `yaml:"images"`
	Rules  []Rule  `yaml:"rules"`

	// Plant database: which line this server is (stamped on every run) and where results
	// go. Several lines can share one PostgreSQL database (see docs/server.md).
	Line  string `yaml:"line"`
	Store Store  `yaml:"store"`

	// Operators: who may reset devices and, optionally, look at the dashboard (operators.go).
	Operators Operators `yaml:"operators"`
	// The line view (stations.go): where each device sits, and when a device counts as
	// gone silent.
	Stations  []Station `yaml:"stations"`
	Heartbeat Heartbeat `yaml:"heartbeat"`
	// Shifts are the start times of the line's shifts, HH:MM in the server's local time
	// (default 06:00, 14:00, 22:00): the dashboard's shift figures begin at the latest.
	Shifts []string `yaml:"shifts"`

	// Swarm: the line's devices share images over BitTorrent, the server being tracker and
	// seed (swarm.go).
	Swarm Swarm `yaml:"swarm"`
}

// Store picks the results database.
type Store struct {
	// Driver is "sqlite" (default: data_dir/results.db, nothing else to set) or "postgres"
	// (the plant's database; data_dir/results.db stays the line's own copy and queue).
	Driver string `yaml:"driver"`
	// DSN is PostgreSQL's connection string, a URL (postgres://user@host/db?sslmode=...) or
	// key=value pairs. Keep passwords out of it: ~/.pgpass or PGPASSFILE are read.
	DSN string `yaml:"dsn"`
	// AckWait bounds how long a final result waits to reach PostgreSQL before the device is
	// answered from the line's queue alone (default 5s; no wait while it is unreachable).
	AckWait time.Duration `yaml:"ack_wait"`
}

// HTTP is the HTTP server: agent API, images, scenarios, dashboard and metrics.
type HTTP struct {
	Enabled bool   `yaml:"enabled"`
	Listen  string `yaml:"listen"`
	// TLSCert and TLSKey switch the listener to HTTPS when both are set.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Parts of the HTTP server that can be switched off one by one (all default to on).
	API       *bool `yaml:"api"`
	Images    *bool `yaml:"images"`
	Scenarios *bool `yaml:"scenarios"`
	Dashboard *bool `yaml:"dashboard"`
	Metrics   *bool `yaml:"metrics"`
	// ImagesURL and ScenariosURL, when set, are the base URLs put into jobs instead of this
	// server's own /images/ and /scenarios/ (e.g. the plant's nginx). Relative URLs in jobs are
	// resolved by the agent against the server URL it was booted with.
	ImagesURL    string `yaml:"images_url"`
	ScenariosURL string `yaml:"scenarios_url"`
	// BootDir, when set, is served under /boot/: the kernel and initrd for lpxelinux.0, which
	// loads them over HTTP several times faster than TFTP (set tftp.pxelinux.http_base to
	// public_url + "/boot/"). Usually the TFTP root.
	BootDir string `yaml:"boot_dir"`
	// PublicURL is how devices reach this server (http://10.0.2.2:8080); the TFTP-generated
	// pxelinux.cfg puts it on the kernel command line as flashline.server=.
	PublicURL string `yaml:"public_url"`
}

// On reports whether an optional switch is on; nil (not written) means on.
func On(b *bool) bool { return b == nil || *b }

// DHCP configures the built-in DHCP server (server/dhcp).
type DHCP struct {
	Enabled bool `yaml:"enabled"`
	// Mode is "proxy" (answer only PXE clients beside the plant's DHCP server) or "full".
	Mode      string `yaml:"mode"`
	Interface string `yaml:"interface"`
	// Listen (default 0.0.0.0:67) and, in proxy mode, PXEListen (default 0.0.0.0:4011).
	Listen    string `yaml:"listen"`
	PXEListen string `yaml:"pxe_listen"`
	// ServerIP is this host's address on the line network (default: the interface's only
	// IPv4 address); NextServer the TFTP server (default ServerIP).
	ServerIP   string `yaml:"server_ip"`
	NextServer string `yaml:"next_server"`
	// Boot files by client architecture (option 93).
	Boot DHCPBoot `yaml:"boot"`
	// Full mode only: the pool and the options handed out. Leases are kept in
	// data_dir/dhcp-leases.json.
	RangeStart string        `yaml:"range_start"`
	RangeEnd   string        `yaml:"range_end"`
	Subnet     string        `yaml:"subnet"` // CIDR, default the range's /24
	Router     string        `yaml:"router"`
	DNS        []string      `yaml:"dns"`
	LeaseTime  time.Duration `yaml:"lease_time"`
}

// DHCPBoot names the boot file each kind of client gets.
type DHCPBoot struct {
	BIOS  string `yaml:"bios"`  // default pxelinux.0 (lpxelinux.0 to load the kernel over HTTP)
	EFI64 string `yaml:"efi64"` // default syslinux.efi
	EFI32 string `yaml:"efi32"`
	IPXE  string `yaml:"ipxe"` // for clients already running iPXE, e.g. an http:// script URL
}

// TFTP configures the built-in TFTP server (server/tftp) and the pxelinux.cfg it generates
// per device (server/pxecfg).
type TFTP struct {
	Enabled   bool   `yaml:"enabled"`
	Listen    string `yaml:"listen"` // default 0.0.0.0:69
	Interface string `yaml:"interface"`
	// Root holds pxelinux.0, ldlinux.c32, the kernel and initrd.gz.
	Root         string   `yaml:"root"`
	MaxTransfers int      `yaml:"max_transfers"`
	PXE          PXELinux `yaml:"pxelinux"`
}

// PXELinux is the content of the generated pxelinux.cfg files.
type PXELinux struct {
	// ServerURL is put on the kernel command line as flashline.server= (default
	// http.public_url).
	ServerURL string `yaml:"server_url"`
	// Kernel and Initrd are paths under the TFTP root (default vmlinuz and initrd.gz) or
	// http:// URLs; HTTPBase, with lpxelinux.0, is prefixed to them.
	Kernel     string   `yaml:"kernel"`
	Initrd     string   `yaml:"initrd"`
	HTTPBase   string   `yaml:"http_base"`
	Consoles   []string `yaml:"consoles"`
	SerialPort string   `yaml:"serial_port"`
	ExtraArgs  []string `yaml:"extra_args"`
	// UnknownDevices is what a device never seen gets: provision (default) or localboot.
	UnknownDevices string `yaml:"unknown_devices"`
}

// Sink is the TCP sink that wifi.throughput steps push to: it reads and discards what a device
// sends, so the device measures its Wi-Fi link against the line server.
type Sink struct {
	Enabled bool   `yaml:"enabled"`
	Listen  string `yaml:"listen"` // host:port, e.g. ":5201"
	// MaxDuration bounds one connection (default 2m): a stuck device cannot hold it forever.
	MaxDuration time.Duration `yaml:"max_duration"`
}

// Jobs holds settings of the jobs handed to devices.
type Jobs struct {
	// TTL is how long a job stays valid after it is issued (default 2h).
	TTL time.Duration `yaml:"ttl"`
	// RetryAfter is what a device with no matching rule is told to wait (default 30s).
	RetryAfter time.Duration `yaml:"retry_after"`
	// ComputeImageHashes lets the server hash (and decompress) images at startup when neither
	// the config nor a sidecar gives their SHA-256 and size (default true).
	ComputeImageHashes *bool `yaml:"compute_image_hashes"`
}

// Image is one image file in ImagesDir.
type Image struct {
	Name string `yaml:"name"`
	// File is the path under ImagesDir (compressed or raw).
	File string `yaml:"file"`
	// SHA256 and Size describe the decompressed image. When empty they come from a sidecar
	// (<file>.sha256) or are computed at startup.
	SHA256 string `yaml:"sha256"`
	Size   Bytes  `yaml:"size"`
}

// Rule maps devices to a scenario and image. The first matching rule wins.
type Rule struct {
	Name     string `yaml:"name"`
	Match    Match  `yaml:"match"`
	Scenario string `yaml:"scenario"` // file under ScenariosDir
	Image    string `yaml:"image"`    // name of an Image
	Target   Target `yaml:"target"`
	After    string `yaml:"after"` // reboot (default), poweroff, kexec, halt, none
	Flash    Flash  `yaml:"flash"`
}

// Match is the inventory condition of a rule; every field given must match, none given
// matches every device.
type Match struct {
	// Product is a glob (path.Match syntax) on the DMI product name.
	Product string `yaml:"product"`
	// Serial is a glob on the DMI serial number.
	Serial string `yaml:"serial"`
	// MACs lists MAC addresses or globs (52:54:00:*); the boot MAC must match one.
	MACs []string `yaml:"macs"`
	// Modules lists modules (wifi, lte, bluetooth, buttons) that must all be present;
	// a name prefixed with "!" must be absent.
	Modules []string `yaml:"modules"`
}

// Target selects the disk to flash.
type Target struct {
	Device    string `yaml:"device"`
	Transport string `yaml:"transport"`
	MinSize   Bytes  `yaml:"min_size"`
}

// Flash holds the flash options put into jobs.
type Flash struct {
	VerifyReadback    bool `yaml:"verify_readback"`
	GrowLastPartition bool `yaml:"grow_last_partition"`

	// WhileTesting streams and writes the image while the scenario runs; the first MiB is
	// committed only once every step passed. Off by default: some lines want a failing
	// device left untouched for rework.
	WhileTesting bool `yaml:"while_testing"`
}

// Bytes is a size written as a number of bytes or with a unit (512MiB, 16GB).
type Bytes int64

// UnmarshalYAML accepts 123, "123", "16GB", "512MiB".
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseBytes(n.Value)
	if err != nil {
		return err
	}
	*b = Bytes(v)
	return nil
}

// ParseBytes parses a size with an optional decimal (kB, MB, GB, TB) or binary (KiB, MiB,
// GiB, TiB) unit.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	if num == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "kb": 1e3, "k": 1e3, "mb": 1e6, "m": 1e6, "gb": 1e9, "g": 1e9, "tb": 1e12, "t": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}[strings.ToLower(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("size %q: not a valid size", s)
	}
	return int64(f * mult), nil
}

// Defaults.
const (
	DefaultListen     = ":8080"
	DefaultTTL        = 2 * time.Hour
	DefaultRetryAfter = 30 * time.Second
)

// Load reads, decodes and validates the file at path. Relative directories in the file are
// taken relative to the file's own directory, so a config can travel with its data. The error
// is Problems: every mistake, each at its line and column. It does not look at the host; for
// that (before serving) use CheckFile with Host.
func Load(path string) (*Config, error) {
	c, ps := CheckFile(path, CheckOptions{})
	if len(ps) > 0 {
		return nil, ps
	}
	return c, nil
}

// Parse decodes and validates a configuration. Unknown keys are errors, so a typo does not
// silently switch a part off. The error is Problems, positions without a file name.
func Parse(b []byte) (*Config, error) {
	c, ps := Check("", b, CheckOptions{})
	if len(ps) > 0 {
		return nil, ps
	}
	return c, nil
}

func (c *Config) setDefaults() {
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultListen
	}
	if c.Jobs.TTL == 0 {
		c.Jobs.TTL = DefaultTTL
	}
	if c.Jobs.RetryAfter == 0 {
		c.Jobs.RetryAfter = DefaultRetryAfter
	}
	for i := range c.Rules {
		if c.Rules[i].After == "" {
			c.Rules[i].After = "reboot"
		}
		if c.Rules[i].Name == "" {
			c.Rules[i].Name = fmt.Sprintf("rule %d", i+1)
		}
	}
	if c.DHCP.Mode == "" {
		c.DHCP.Mode = "proxy"
	}
	if c.TFTP.PXE.ServerURL == "" {
		c.TFTP.PXE.ServerURL = c.HTTP.PublicURL
	}
	if c.TFTP.PXE.UnknownDevices == "" {
		c.TFTP.PXE.UnknownDevices = "provision"
	}
	c.Limits.setDefaults(c.TFTP.MaxTransfers)
	c.Operators.setDefaults()
	c.setLineViewDefaults()
	if c.Swarm.PeerPort == 0 {
		c.Swarm.PeerPort = DefaultSwarmPeerPort
	}
}

func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.KeyFile)
	abs(&c.ImagesDir)
	abs(&c.ScenariosDir)
	abs(&c.HTTP.TLSCert)
	abs(&c.HTTP.TLSKey)
	abs(&c.TFTP.Root)
	abs(&c.HTTP.BootDir)
	abs(&c.Operators.ClientCA)
}

// Validate checks the configuration and returns every problem found, one per line.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if c.DataDir == "" && (c.HTTP.Enabled || c.TFTP.Enabled) {
		bad("data_dir: required (the results database and device boot modes live there)")
	}
	if c.Line != "" && !validLine(c.Line) {
		bad("line %q: want 1 to 64 letters, digits, '.', '_' or '-'", c.Line)
	}
	switch c.Store.Driver {
	case "", "sqlite":
		if c.Store.DSN != "" {
			bad("store.dsn: only for driver postgres")
		}
	case "postgres":
		if c.Store.DSN == "" {
			bad("store.dsn: required for driver postgres (postgres://user@host/db or host=... dbname=...)")
		}
		if c.Line == "" {
			bad("line: required with store driver postgres, so that the lines sharing the database can be told apart")
		}
	default:
		bad("store.driver %q: want sqlite or postgres", c.Store.Driver)
	}
	if c.Store.AckWait < 0 {
		bad("store.ack_wait %s: must not be negative", c.Store.AckWait)
	}
	if c.Sink.Enabled {
		if _, _, err := net.SplitHostPort(c.Sink.Listen); err != nil {
			bad("sink.listen %q: want host:port or :port", c.Sink.Listen)
		}
		if c.Sink.MaxDuration < 0 {
			bad("sink.max_duration %s: must not be negative", c.Sink.MaxDuration)
		}
	}
	if c.HTTP.Enabled {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			bad("http.listen %q: want host:port or :port", c.HTTP.Listen)
		}
		if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
			bad("http: tls_cert and tls_key go together (both or neither)")
		}
		if On(c.HTTP.Images) && c.ImagesDir == "" {
			bad("images_dir: required when http.images is on")
		}
		if On(c.HTTP.Scenarios) && c.ScenariosDir == "" {
			bad("scenarios_dir: required when http.scenarios is on")
		}
		for _, u := range []struct{ key, v string }{{"http.images_url", c.HTTP.ImagesURL}, {"http.scenarios_url", c.HTTP.ScenariosURL}, {"http.public_url", c.HTTP.PublicURL}} {
			if u.v != "" && !strings.HasPrefix(u.v, "http://") && !strings.HasPrefix(u.v, "https://") && !strings.HasPrefix(u.v, "/") {
				bad("%s %q: want an http(s):// URL or an absolute path", u.key, u.v)
			}
		}
	}
	errs = append(errs, c.Limits.validate()...)
	if c.Jobs.TTL < time.Minute {
		bad("jobs.ttl %s: at least 1m (a device needs time to run its scenario)", c.Jobs.TTL)
	}

	images := map[string]bool{}
	for i, im := range c.Images {
		where := fmt.Sprintf("images[%d]", i)
		if im.Name == "" {
			bad("%s: name is required", where)
		} else if images[im.Name] {
			bad("%s: name %q used twice", where, im.Name)
		}
		images[im.Name] = true
		if err := CheckRelPath(im.File); err != nil {
			bad("%s (%s): file: %v", where, im.Name, err)
		}
		if im.SHA256 != "" && !isHex(im.SHA256, 64) {
			bad("%s (%s): sha256 %q: want 64 hex digits", where, im.Name, im.SHA256)
		}
		if im.Size < 0 {
			bad("%s (%s): size must not be negative", where, im.Name)
		}
	}
	for i, r := range c.Rules {
		where := fmt.Sprintf("rules[%d] (%s)", i, r.Name)
		if r.Scenario == "" {
			bad("%s: scenario is required", where)
		} else if err := CheckRelPath(r.Scenario); err != nil {
			bad("%s: scenario: %v", where, err)
		}
		if r.Image == "" {
			bad("%s: image is required", where)
		} else if !images[r.Image] {
			bad("%s: image %q is not in images", where, r.Image)
		}
		for _, g := range []struct{ key, v string }{{"match.product", r.Match.Product}, {"match.serial", r.Match.Serial}} {
			if _, err := path.Match(g.v, ""); err != nil {
				bad("%s: %s %q: %v", where, g.key, g.v, err)
			}
		}
		for _, m := range r.Match.MACs {
			if _, err := path.Match(strings.ToLower(m), ""); err != nil {
				bad("%s: match.macs %q: %v", where, m, err)
			}
		}
		for _, m := range r.Match.Modules {
			if strings.TrimPrefix(m, "!") == "" {
				bad("%s: match.modules: empty module name", where)
			}
		}
		switch r.After {
		case "reboot", "poweroff", "kexec", "halt", "none":
		default:
			bad("%s: after %q: want reboot, poweroff, kexec, halt or none", where, r.After)
		}
		if r.Target.Device != "" && !strings.HasPrefix(r.Target.Device, "/dev/") {
			bad("%s: target.device %q: want a /dev/ path", where, r.Target.Device)
		}
	}

	if c.DHCP.Enabled {
		switch c.DHCP.Mode {
		case "proxy", "full":
		default:
			bad("dhcp.mode %q: want proxy or full", c.DHCP.Mode)
		}
		for _, a := range []struct{ key, v string }{{"server_ip", c.DHCP.ServerIP}, {"next_server", c.DHCP.NextServer}, {"router", c.DHCP.Router}} {
			if a.v != "" {
				if _, err := netip.ParseAddr(a.v); err != nil {
					bad("dhcp.%s %q: %v", a.key, a.v, err)
				}
			}
		}
		for _, d := range c.DHCP.DNS {
			if _, err := netip.ParseAddr(d); err != nil {
				bad("dhcp.dns %q: %v", d, err)
			}
		}
		if c.DHCP.Mode == "full" {
			for _, a := range []struct{ key, v string }{{"range_start", c.DHCP.RangeStart}, {"range_end", c.DHCP.RangeEnd}} {
				if _, err := netip.ParseAddr(a.v); err != nil {
					bad("dhcp.%s %q: required in full mode, want an IPv4 address", a.key, a.v)
				}
			}
			if c.DHCP.Subnet != "" {
				if _, err := netip.ParsePrefix(c.DHCP.Subnet); err != nil {
					bad("dhcp.subnet %q: want a CIDR prefix such as 10.77.0.0/24", c.DHCP.Subnet)
				}
			}
			if c.DataDir == "" {
				bad("data_dir: required for dhcp full mode (the lease file lives there)")
			}
		}
	}
	if c.TFTP.Enabled {
		if c.TFTP.Root == "" {
			bad("tftp.root: required when tftp is enabled (pxelinux.0, ldlinux.c32, kernel, initrd)")
		}
		if c.TFTP.PXE.ServerURL == "" {
			bad("tftp.pxelinux.server_url (or http.public_url): required when tftp is enabled; it becomes flashline.server= on the kernel command line")
		} else if !strings.HasPrefix(c.TFTP.PXE.ServerURL, "http://") && !strings.HasPrefix(c.TFTP.PXE.ServerURL, "https://") {
			bad("tftp.pxelinux.server_url %q: want an http(s):// URL", c.TFTP.PXE.ServerURL)
		}
		switch c.TFTP.PXE.UnknownDevices {
		case "provision", "localboot":
		default:
			bad("tftp.pxelinux.unknown_devices %q: want provision or localboot", c.TFTP.PXE.UnknownDevices)
		}
	}
	errs = append(errs, c.validateValues()...)
	errs = append(errs, c.validateOperators()...)
	errs = append(errs, c.validateLineView()...)
	errs = append(errs, c.validateSwarm()...)
	return errors.Join(errs...)
}

// CheckRelPath accepts a slash-separated path that stays inside its directory: not empty, not
// absolute, no "..", no backslash or NUL, no hidden (dot) elements.
func CheckRelPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.ContainsAny(p, "\\\x00"):
		return fmt.Errorf("%q: backslash or NUL in path", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q: absolute path (want a path inside the directory)", p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." || strings.HasPrefix(el, ".") {
			return fmt.Errorf("%q: path element %q not allowed", p, el)
		}
	}
	return nil
}

func validLine(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}
