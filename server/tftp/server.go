// Package tftp is the read-only TFTP server of the Flashline line server.
//
// It serves what PXE firmware and pxelinux fetch: pxelinux.0, ldlinux.c32,
// the kernel and initrd from a root directory, and per-device files such as
// pxelinux.cfg/01-aa-bb-cc-dd-ee-ff generated on the fly by a [VirtualFunc].
//
// Protocol support: RFC 1350 read requests in octet mode (netascii is
// converted on the fly), RFC 2347 option negotiation with the blksize
// (RFC 2348), tsize and timeout (RFC 2349) and windowsize (RFC 7440)
// options, retransmission on timeout, block-number rollover past 65535 so
// that files larger than 32 MiB at 512-byte blocks still transfer, and any
// number of concurrent transfers up to [Config.MaxTransfers]. Write requests
// are refused with an "access violation" error packet.
//
// Path safety: names are resolved with [os.Root], so neither ".." nor a
// symbolic link can reach outside [Config.Root]; any ".." component is
// refused outright; leading slashes, backslashes and the root directory's own
// absolute prefix are tolerated because PXE clients send them.
//
// Memory is bounded: each transfer holds at most windowsize blocks of
// blksize bytes (at most MaxWindowSize x MaxBlockSize), and there are at most
// MaxTransfers transfers, at most MaxPerClient of them from one address;
// requests beyond that get a "server busy" error. Time is bounded too: a
// transfer ends after MaxIdle without progress and after MaxLifetime in all,
// whatever timeout the client negotiated.
//
// Typical use:
//
//	srv, err := tftp.New(tftp.Config{ListenAddr: "0.0.0.0:69", Root: "/srv/tftp"},
//		tftp.Deps{Logger: log, Virtual: gen.TFTPFile})
//	if err != nil { ... }
//	err = srv.Serve(ctx) // returns nil once ctx is cancelled
package tftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Config is the TFTP service's configuration. The zero value of every field
// but ListenAddr means "use the default".
type Config struct {
	// ListenAddr is the UDP address requests arrive on, for example
	// "0.0.0.0:69" on a line host or "127.0.0.1:0" in a test (see
	// [Server.Addr] for the port picked).
	ListenAddr string
	// Interface, when set, binds the listening socket and every transfer
	// socket to that network interface (SO_BINDTODEVICE).
	Interface string
	// Root is the directory served. Empty means only virtual files are
	// served.
	Root string
	// Timeout is the retransmission timeout used unless the client
	// negotiates its own with the timeout option. Default 1s.
	Timeout time.Duration
	// Retries is how many times an unacknowledged packet is sent again
	// before the transfer is abandoned. Default 5.
	Retries int
	// MaxBlockSize caps the blksize option. Default and maximum 65464.
	MaxBlockSize int
	// MaxWindowSize caps the windowsize option. Default 16.
	MaxWindowSize int
	// MaxTransfers bounds concurrent transfers. Default 64.
	MaxTransfers int
	// MaxPerClient bounds the concurrent transfers of one client address, so
	// that one host cannot take every slot. Default 4 (PXE firmware and
	// pxelinux fetch one file at a time), at most MaxTransfers.
	MaxPerClient int
	// MaxLifetime ends any transfer after this long, whatever the client
	// negotiated. Default 5 minutes.
	MaxLifetime time.Duration
	// MaxIdle ends a transfer that has had no acknowledgement moving it
	// forward for this long. It bounds the client's timeout option (up to
	// 255 s a packet, times the retries). Default 15 s.
	MaxIdle time.Duration
}

// VirtualFunc returns the content of a generated file. name is the cleaned
// path relative to the root, without a leading slash, for example
// "pxelinux.cfg/01-52-54-00-12-34-56". It returns an error wrapping
// [fs.ErrNotExist] when it does not provide that name, and the server then
// looks in the root directory. Any other error makes the transfer fail.
type VirtualFunc func(ctx context.Context, name string) ([]byte, error)

// Deps are the server's collaborators. All are optional.
type Deps struct {
	// Logger receives one line per transfer and every refused or malformed
	// packet. Default slog.Default().
	Logger *slog.Logger
	// Virtual supplies generated files; it takes precedence over Root.
	Virtual VirtualFunc
	// OnTransfer, when set, is told about every transfer that started (the
	// file was found), whether or not it completed, so that the line server
	// can time each device's netboot. It runs on the transfer's goroutine
	// after the transfer ended and should return quickly.
	OnTransfer func(Transfer)
}

// Transfer describes one finished read transfer, for [Deps.OnTransfer].
type Transfer struct {
	Client netip.AddrPort
	// File is the cleaned name, relative to the root, as [VirtualFunc] sees it.
	File string
	// Bytes is how much the client acknowledged.
	Bytes int64
	// Start is when the request was taken up, End when the transfer ended.
	Start, End time.Time
	// Err is nil when the whole file was acknowledged.
	Err error
}

// Server is a running TFTP service. Create it with [New], run it with
// [Server.Serve].
type Server struct {
	cfg        Config
	log        *slog.Logger
	virtual    VirtualFunc
	onTransfer func(Transfer)
	root       *os.Root
	conn       *net.UDPConn
	pconn      *ipv4.PacketConn
	slots      chan struct{}

	mu        sync.Mutex
	perClient map[netip.Addr]int // running transfers by client address

	closeOnce sync.Once
	closeErr  error
}

// New checks cfg, opens the root directory and binds the listening socket,
// so that configuration and permission errors surface before [Server.Serve].
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.ListenAddr == "" {
		return nil, errors.New("tftp: ListenAddr is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.MaxBlockSize <= 0 || cfg.MaxBlockSize > maxBlockSize {
		cfg.MaxBlockSize = maxBlockSize
	}
	if cfg.MaxBlockSize < defaultBlock {
		return nil, fmt.Errorf("tftp: MaxBlockSize %d is below the RFC 1350 block size 512", cfg.MaxBlockSize)
	}
	if cfg.MaxWindowSize <= 0 {
		cfg.MaxWindowSize = 16
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 64
	}
	if cfg.MaxPerClient <= 0 {
		cfg.MaxPerClient = 4
	}
	cfg.MaxPerClient = min(cfg.MaxPerClient, cfg.MaxTransfers)
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = 5 * time.Minute
	}
	if cfg.MaxIdle <= 0 {
		cfg.MaxIdle = 15 * time.Second
	}
	s := &Server{
		perClient:  map[netip.Addr]int{},
		cfg:        cfg,
		log:        deps.Logger,
		virtual:    deps.Virtual,
		onTransfer: deps.OnTransfer,
		slots:      make(chan struct{}, cfg.MaxTransfers),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "tftp")
	if cfg.Root != "" {
		r, err := os.OpenRoot(cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("tftp: open root: %w", err)
		}
		s.root = r
	}
	conn, err := s.listen(context.Background(), cfg.ListenAddr)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("tftp: listen on %s: %w", cfg.ListenAddr, err)
	}
	s.conn = conn
	s.pconn = ipv4.NewPacketConn(conn)
	// The destination address of each request tells which local address
	// the reply must come from on a multi-homed host. Not fatal if the
	// kernel refuses: replies then use the routing table's choice.
	if err := s.pconn.SetControlMessage(ipv4.FlagDst, true); err != nil {
		s.log.Warn("cannot learn request destination addresses", "err", err)
	}
	return s, nil
}

// listen opens a UDP socket, bound to cfg.Interface when set.
func (s *Server) listen(ctx context.Context, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{}
	if s.cfg.Interface != "" {
		iface := s.cfg.Interface
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.BindToDevice(int(fd), iface)
			})
			if err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("bind to device %s: %w", iface, serr)
			}
			return nil
		}
	}
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// Addr is the address the server listens on, with the actual port when
// ListenAddr asked for port 0.
func (s *Server) Addr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close releases the socket and the root directory. Serve calls it on
// return; calling it again is harmless.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.conn != nil {
			s.closeErr = s.conn.Close()
		}
		if s.root != nil {
			if err := s.root.Close(); err != nil && s.closeErr == nil {
				s.closeErr = err
			}
		}
	})
	return s.closeErr
}

// Serve answers requests until ctx is cancelled, then waits for running
// transfers to stop and returns nil. It returns an error only when the
// listening socket fails.
func (s *Server) Serve(ctx context.Context) error {
	// On the way out: stop reading, close, cancel the transfers, then
	// wait for them.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	s.log.Info("serving", "addr", s.Addr().String(), "root", s.cfg.Root, "interface", s.cfg.Interface)
	// A request is at most a filename, a mode and a few options; anything
	// longer than this is truncated and then fails to parse.
	buf := make([]byte, 1500)
	for {
		n, cm, peer, err := s.pconn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil // cancelled, or closed with Close
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tftp: read request: %w", err)
		}
		raddr, ok := peer.(*net.UDPAddr)
		if !ok {
			continue
		}
		req, err := parseRequest(buf[:n])
		if err != nil {
			s.log.Warn("dropped malformed packet", "client", raddr.String(), "len", n, "err", err)
			continue
		}
		if req.op == opWRQ {
			s.log.Warn("refused write request", "client", raddr.String(), "file", sanitize(req.filename))
			s.conn.WriteTo(appendError(nil, errAccessViolation, "write requests are not accepted: read-only server"), raddr)
			continue
		}
		if req.mode == "mail" {
			s.conn.WriteTo(appendError(nil, errIllegalOperation, "mail mode is not supported"), raddr)
			continue
		}
		var local net.IP
		if cm != nil && cm.Dst != nil && !cm.Dst.IsUnspecified() && !cm.Dst.IsMulticast() && !cm.Dst.Equal(net.IPv4bcast) {
			local = cm.Dst
		}
		client := raddr.AddrPort().Addr().Unmap()
		if !s.acquire(client) {
			s.log.Warn("refused request: too many transfers from this client", "client", raddr.String(), "file", sanitize(req.filename), "max_per_client", s.cfg.MaxPerClient)
			s.conn.WriteTo(appendError(nil, errNotDefined, "server busy: too many transfers from your address, try again"), raddr)
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.release(client)
			s.log.Warn("refused request: too many transfers", "client", raddr.String(), "file", sanitize(req.filename), "max", s.cfg.MaxTransfers)
			s.conn.WriteTo(appendError(nil, errNotDefined, "server busy, try again"), raddr)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.slots; s.release(client) }()
			// The lifetime is the server's, not the client's: a client's
			// timeout option must not let it hold a slot for long.
			tctx, cancel := context.WithTimeoutCause(ctx, s.cfg.MaxLifetime, errLifetime)
			defer cancel()
			s.handle(tctx, req, local, raddr)
		}()
	}
}

// errLifetime ends a transfer that ran longer than Config.MaxLifetime.
var errLifetime = errors.New("transfer took longer than the server allows")

// acquire takes one of client's transfer slots, or reports that it has none left.
func (s *Server) acquire(client netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perClient[client] >= s.cfg.MaxPerClient {
		return false
	}
	s.perClient[client]++
	return true
}

func (s *Server) release(client netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perClient[client] <= 1 {
		delete(s.perClient, client)
		return
	}
	s.perClient[client]--
}

// handle runs one read transfer from a fresh socket, whose port is the
// server's transfer ID for this client (RFC 1350 section 4).
func (s *Server) handle(ctx context.Context, req request, local net.IP, raddr *net.UDPAddr) {
	start := time.Now()
	log := s.log.With("client", raddr.String(), "file", sanitize(req.filename))
	conn, err := s.dial(ctx, local, raddr)
	if err != nil {
		log.Error("cannot open transfer socket", "err", err)
		return
	}
	defer conn.Close()

	src, err := s.open(ctx, req.filename)
	if err != nil {
		code, msg := errFileNotFound, "file not found"
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, errForbidden):
			code, msg = errAccessViolation, "access denied"
		default:
			code, msg = errNotDefined, "cannot read file"
		}
		log.Info("refused read request", "err", err)
		conn.Write(appendError(nil, code, msg))
		return
	}
	defer src.Close()
	if req.mode == "netascii" {
		src.r = newNetasciiReader(src.r)
		src.size = -1
	}
	t := &transfer{
		conn:    conn,
		log:     log,
		src:     src,
		timeout: s.cfg.Timeout,
		retries: s.cfg.Retries,
		maxIdle: s.cfg.MaxIdle,
		blksize: defaultBlock,
		window:  1,
	}
	oack := t.negotiate(req.options, s.cfg.MaxBlockSize, s.cfg.MaxWindowSize)
	err = t.run(ctx, oack)
	if s.onTransfer != nil {
		s.onTransfer(Transfer{Client: raddr.AddrPort(), File: src.name, Bytes: t.sent, Start: start, End: time.Now(), Err: err})
	}
	if err != nil {
		var ce *clientError
		if errors.As(err, &ce) && ce.code == errOptionRefused && t.sent == 0 {
			// UEFI firmware asks for tsize alone, then ends the
			// transfer with error 8 and asks again for the data.
			log.Info("client ended the transfer after option negotiation", "err", err)
			return
		}
		log.Warn("transfer failed", "err", err, "bytes", t.sent)
		return
	}
	log.Info("sent", "bytes", t.sent, "blksize", t.blksize, "windowsize", t.window,
		"duration", time.Since(start).Round(time.Millisecond))
}

// dial opens a socket connected to the client, from the address the request
// was sent to. A connected socket makes the kernel drop datagrams from any
// other address or port.
func (s *Server) dial(ctx context.Context, local net.IP, raddr *net.UDPAddr) (*net.UDPConn, error) {
	laddr := "0.0.0.0:0"
	if local != nil {
		laddr = net.JoinHostPort(local.String(), "0")
	}
	var d net.Dialer
	if s.cfg.Interface != "" {
		iface := s.cfg.Interface
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), iface) }); err != nil {
				return err
			}
			return serr
		}
	}
	la, err := net.ResolveUDPAddr("udp4", laddr)
	if err != nil {
		return nil, err
	}
	d.LocalAddr = la
	c, err := d.DialContext(ctx, "udp4", raddr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}
