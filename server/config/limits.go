package config

import (
	"fmt"
	"time"
)

// Limits bounds what one client, hostile or broken, can make the server hold: connections,
// streams, transfers, request sizes and addresses. Every field has a default sized for a line of
// a few hundred devices; docs/server.md says what each one stops.
type Limits struct {
	HTTP  HTTPLimits  `yaml:"http"`
	Hello HelloLimits `yaml:"hello"`
	TFTP  TFTPLimits  `yaml:"tftp"`
	DHCP  DHCPLimits  `yaml:"dhcp"`
}

// HTTPLimits are the HTTP server's deadlines and caps.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds the time to send the request line and headers (default 10s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// BodyTimeout bounds the time to send an API request body (default 1m); a slower body is
	// answered 408.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// WriteTimeout bounds writing a non-streaming answer (API, dashboard views, metrics;
	// default 1m). Downloads and the live stream are bounded by StallTimeout instead.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections with no request (default 2m).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// StallTimeout drops a download (images, scenarios, boot files) or a live stream whose
	// client has not taken a single byte for this long (default 30s). A slow client that keeps
	// reading is never cut, however large the image.
	StallTimeout time.Duration `yaml:"stall_timeout"`
	// MaxHeaderBytes caps the request line and headers (default 64KiB; an agent sends < 1 kB).
	MaxHeaderBytes Bytes `yaml:"max_header_bytes"`
	// MaxConnsPerClient caps the open connections of one client address (default 32).
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
	// MaxConns caps all open connections (default 2048; keep it below the file limit).
	MaxConns int `yaml:"max_conns"`
	// MaxDownloadsPerClient and MaxDownloads cap the downloads and live streams running at
	// once for one address (default 6, what a browser opens) and in all (default 1024).
	MaxDownloadsPerClient int `yaml:"max_downloads_per_client"`
	MaxDownloads          int `yaml:"max_downloads"`
	// MaxEventStreams caps the dashboard's live streams (/dashboard/events, default 64);
	// beyond it a browser gets 503 with a message.
	MaxEventStreams int `yaml:"max_event_streams"`
}

// HelloLimits bound the inventory and timings a device sends with its hello.
type HelloLimits struct {
	// MaxBody is the largest hello body (default 256KiB; real inventories are a few kB).
	MaxBody Bytes `yaml:"max_body"`
	// MaxListItems caps every list in the hello: disks, NICs, USB devices, radios, inputs,
	// modules, timings (default 128).
	MaxListItems int `yaml:"max_list_items"`
	// MaxString caps every string in the hello (default 256 bytes).
	MaxString int `yaml:"max_string"`
}

// TFTPLimits bound the TFTP server's transfers.
type TFTPLimits struct {
	// MaxTransfers caps concurrent transfers (default 64; tftp.max_transfers, when set, wins
	// for compatibility).
	MaxTransfers int `yaml:"max_transfers"`
	// MaxPerClient caps the concurrent transfers of one client address (default 4: PXE
	// firmware and pxelinux fetch one file at a time).
	MaxPerClient int `yaml:"max_per_client"`
	// MaxLifetime ends any transfer after this long, whatever timeout the client negotiated
	// (default 5m; an initrd at pxelinux speed takes well under a minute).
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// MaxIdle ends a transfer with no acknowledgement for this long, bounding the client's
	// timeout option (default 15s; the option's range reaches 255 s a packet).
	MaxIdle time.Duration `yaml:"max_idle"`
}

// DHCPLimits protect the full-mode address pool.
type DHCPLimits struct {
	// NewLeases says who may take an address it does not hold yet: "pxe" (PXE firmware only;
	// the agent's own DHCP then renews the same MAC's address) or "any" (default).
	NewLeases string `yaml:"new_leases"`
	// NonPXEShare is the fraction of the pool that clients which did not PXE-boot may hold
	// (default 0.5): rogue or foreign devices can never take the addresses the line's PXE
	// clients need. 1 turns the reserve off.
	NonPXEShare *float64 `yaml:"non_pxe_share"`
}

// Limit defaults.
const (
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultBodyTimeout           = time.Minute
	DefaultWriteTimeout          = time.Minute
	DefaultIdleTimeout           = 2 * time.Minute
	DefaultStallTimeout          = 30 * time.Second
	DefaultMaxHeaderBytes        = 64 << 10
	DefaultMaxConnsPerClient     = 32
	DefaultMaxConns              = 2048
	DefaultMaxEventStreams       = 64
	DefaultMaxDownloadsPerClient = 6
	DefaultMaxDownloads          = 1024
	DefaultHelloMaxBody          = 256 << 10
	DefaultHelloMaxList          = 128
	DefaultHelloMaxString        = 256
	DefaultTFTPMaxTransfers      = 64
	DefaultTFTPMaxPerClient      = 4
	DefaultTFTPMaxLifetime       = 5 * time.Minute
	DefaultTFTPMaxIdle           = 15 * time.Second
	DefaultNonPXEShare           = 0.5
)

func (l *Limits) setDefaults(legacyTFTPMax int) {
	h := &l.HTTP
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	def(&h.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&h.BodyTimeout, DefaultBodyTimeout)
	def(&h.WriteTimeout, DefaultWriteTimeout)
	def(&h.IdleTimeout, DefaultIdleTimeout)
	def(&h.StallTimeout, DefaultStallTimeout)
	if h.MaxHeaderBytes == 0 {
		h.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	defInt(&h.MaxConnsPerClient, DefaultMaxConnsPerClient)
	defInt(&h.MaxConns, DefaultMaxConns)
	defInt(&h.MaxEventStreams, DefaultMaxEventStreams)
	defInt(&h.MaxDownloadsPerClient, DefaultMaxDownloadsPerClient)
	defInt(&h.MaxDownloads, DefaultMaxDownloads)
	if l.Hello.MaxBody == 0 {
		l.Hello.MaxBody = DefaultHelloMaxBody
	}
	defInt(&l.Hello.MaxListItems, DefaultHelloMaxList)
	defInt(&l.Hello.MaxString, DefaultHelloMaxString)
	if legacyTFTPMax > 0 {
		l.TFTP.MaxTransfers = legacyTFTPMax
	}
	defInt(&l.TFTP.MaxTransfers, DefaultTFTPMaxTransfers)
	defInt(&l.TFTP.MaxPerClient, DefaultTFTPMaxPerClient)
	def(&l.TFTP.MaxLifetime, DefaultTFTPMaxLifetime)
	def(&l.TFTP.MaxIdle, DefaultTFTPMaxIdle)
	if l.DHCP.NewLeases == "" {
		l.DHCP.NewLeases = "any"
	}
	if l.DHCP.NonPXEShare == nil {
		v := DefaultNonPXEShare
		l.DHCP.NonPXEShare = &v
	}
}

func (l *Limits) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"http.read_header_timeout", l.HTTP.ReadHeaderTimeout}, {"http.body_timeout", l.HTTP.BodyTimeout},
		{"http.write_timeout", l.HTTP.WriteTimeout}, {"http.idle_timeout", l.HTTP.IdleTimeout},
		{"http.stall_timeout", l.HTTP.StallTimeout}, {"tftp.max_lifetime", l.TFTP.MaxLifetime}, {"tftp.max_idle", l.TFTP.MaxIdle}} {
		if d.v < time.Second {
			bad("limits.%s %s: at least 1s", d.key, d.v)
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"http.max_conns_per_client", l.HTTP.MaxConnsPerClient}, {"http.max_conns", l.HTTP.MaxConns},
		{"http.max_event_streams", l.HTTP.MaxEventStreams}, {"http.max_downloads_per_client", l.HTTP.MaxDownloadsPerClient},
		{"http.max_downloads", l.HTTP.MaxDownloads}, {"hello.max_list_items", l.Hello.MaxListItems},
		{"hello.max_string", l.Hello.MaxString}, {"tftp.max_transfers", l.TFTP.MaxTransfers}, {"tftp.max_per_client", l.TFTP.MaxPerClient}} {
		if n.v < 1 {
			bad("limits.%s %d: at least 1", n.key, n.v)
		}
	}
	if l.HTTP.MaxConnsPerClient > l.HTTP.MaxConns {
		bad("limits.http.max_conns_per_client %d: above limits.http.max_conns %d", l.HTTP.MaxConnsPerClient, l.HTTP.MaxConns)
	}
	if l.HTTP.MaxHeaderBytes < 4<<10 || l.HTTP.MaxHeaderBytes > 1<<20 {
		bad("limits.http.max_header_bytes %d: want 4KiB to 1MiB", l.HTTP.MaxHeaderBytes)
	}
	if l.Hello.MaxBody < 4<<10 || l.Hello.MaxBody > 4<<20 {
		bad("limits.hello.max_body %d: want 4KiB (an inventory is a few kB) to 4MiB (the protocol's limit)", l.Hello.MaxBody)
	}
	if l.TFTP.MaxPerClient > l.TFTP.MaxTransfers {
		bad("limits.tftp.max_per_client %d: above limits.tftp.max_transfers %d", l.TFTP.MaxPerClient, l.TFTP.MaxTransfers)
	}
	switch l.DHCP.NewLeases {
	case "any", "pxe":
	default:
		bad("limits.dhcp.new_leases %q: want any or pxe", l.DHCP.NewLeases)
	}
	if s := *l.DHCP.NonPXEShare; !(s >= 0 && s <= 1) { // NaN too
		bad("limits.dhcp.non_pxe_share %g: want a fraction from 0 to 1", s)
	}
	return errs
}
