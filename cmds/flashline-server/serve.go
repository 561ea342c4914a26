package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/flashline/flashline/internal/logcomponent"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/protocol/sink"
	"github.com/flashline/flashline/server/api"
	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/dashboard"
	"github.com/flashline/flashline/server/dhcp"
	"github.com/flashline/flashline/server/httplimit"
	"github.com/flashline/flashline/server/jobs"
	"github.com/flashline/flashline/server/keys"
	"github.com/flashline/flashline/server/netbootclock"
	"github.com/flashline/flashline/server/operatorauth"
	"github.com/flashline/flashline/server/pxecfg"
	"github.com/flashline/flashline/server/station"
	"github.com/flashline/flashline/server/store"
	"github.com/flashline/flashline/server/swarm"
	"github.com/flashline/flashline/server/tftp"
)

func cmdServe(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", DefaultConfig, "configuration file (see docs/server.example.yaml)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	jsonLogs := fs.Bool("log-json", false, "log as JSON lines instead of text")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "flashline-server serve: unexpected argument %q\nusage: flashline-server [serve] -config FILE\n", fs.Arg(0))
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server: -log-level: %v\n", err)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
	if *jsonLogs {
		h = slog.NewJSONHandler(os.Stderr, hopts)
	}
	// One key scheme: the server's own lines (start-up, listening, shutdown) say
	// component=server, each part's logger its own.
	log := slog.New(logcomponent.New(h, "server"))
	// The same check as `flashline-server check`, before anything (the data directory, the
	// results database) is created.
	cfg, ps := config.CheckFile(*cfgPath, checkOptions(true))
	if len(ps) > 0 {
		fmt.Fprintf(os.Stderr, "%v\nflashline-server: %s: %d problems, not starting (flashline-server check -config %s)\n", ps, *cfgPath, len(ps), *cfgPath)
		return 1
	}
	// The parent context ends only on SIGINT/SIGTERM: say so when it happens (the shutdown
	// itself can take seconds), so that a stop is told apart from a crash in the journal.
	// The line must also be written before "stopped" and before the process exits: once
	// serve returns after a signal, both channels below are ready and a select would pick
	// either, so the stopped case checks the signal itself and "stopped" waits for noted.
	stopped, noted := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(noted)
		select {
		case <-ctx.Done():
		case <-stopped:
			if ctx.Err() == nil {
				return // serve ended on its own (an error), not on a signal
			}
		}
		log.Info("shutting down: signal received", "component", "server")
	}()
	err := serve(ctx, cfg, log)
	close(stopped)
	<-noted
	if err != nil {
		log.Error("flashline-server stopped", "component", "server", "err", err)
		return 1
	}
	log.Info("flashline-server stopped", "component", "server")
	return 0
}

// serve starts every enabled part and runs until ctx ends or one part fails.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if !cfg.HTTP.Enabled && !cfg.DHCP.Enabled && !cfg.TFTP.Enabled && !cfg.Sink.Enabled {
		return errors.New("nothing to serve: enable http, dhcp, tftp or sink in the configuration")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var st store.Backend
	if cfg.HTTP.Enabled || cfg.TFTP.Enabled {
		var err error
		st, err = openStore(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer st.Close()
		log.Info("results database open", "path", filepath.Join(cfg.DataDir, dbFile), "driver", cmp.Or(cfg.Store.Driver, store.DriverSQLite), "line", cfg.Line)
	}

	// The DHCP and TFTP servers tell the clock what each device's netboot did; the API hands
	// the phases over at the device's hello. Without the TFTP part there is nothing to time.
	var clock *netbootclock.Clock
	if cfg.TFTP.Enabled {
		p := cfg.TFTP.PXE
		clock = netbootclock.New(netbootclock.Config{Kernel: cmp.Or(p.Kernel, "vmlinuz"), Initrd: cmp.Or(p.Initrd, "initrd.gz")}) // pxecfg's defaults
	}

	places := newPlaces(cfg)
	var runners []func(context.Context) error
	if cfg.HTTP.Enabled {
		r, err := httpPart(ctx, cfg, st, clock, places, log)
		if err != nil {
			return err
		}
		runners = append(runners, r...)
	}
	if cfg.TFTP.Enabled {
		r, err := tftpPart(cfg, st, clock, places, log)
		if err != nil {
			return err
		}
		runners = append(runners, r)
	}
	if cfg.DHCP.Enabled {
		r, err := dhcpPart(cfg, clock, places, log)
		if err != nil {
			return err
		}
		runners = append(runners, r)
	}
	if cfg.Sink.Enabled {
		ln, err := net.Listen("tcp", cfg.Sink.Listen)
		if err != nil {
			return fmt.Errorf("throughput sink: %w", err)
		}
		maxConn := cmp.Or(cfg.Sink.MaxDuration, 2*time.Minute)
		log.Info("throughput sink listening", "addr", ln.Addr().String(), "max_duration", maxConn)
		runners = append(runners, func(ctx context.Context) error {
			return sink.Serve(ctx, ln, maxConn, log.With("component", "sink"))
		})
	}

	// Run every part; the first to fail stops the others.
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range runners {
		g.Go(func() error { return run(gctx) })
	}
	return g.Wait()
}

func loadKey(cfg *config.Config, log *slog.Logger) (ed25519.PrivateKey, error) {
	if cfg.KeyFile == "" {
		log.Warn("!!! UNSIGNED DEVELOPMENT MODE: no key_file is configured, jobs go out WITHOUT a signature. " +
			"Only agents built without a public key accept them, and anyone on the line network could forge jobs. " +
			"Create a key with 'flashline-server keygen -out DIR' and set key_file for production. !!!")
		return nil, nil
	}
	k, err := keys.LoadPrivateKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	log.Info("jobs are signed", "key_file", cfg.KeyFile, "key_id", protocol.KeyID(k.Public().(ed25519.PublicKey)))
	return k, nil
}

// httpPart builds the HTTP server: agent API, files, dashboard, metrics.
func httpPart(ctx context.Context, cfg *config.Config, st store.Backend, clock *netbootclock.Clock, places *station.Resolver, log *slog.Logger) ([]func(context.Context) error, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := api.NewMetrics(reg)
	registerStoreMetrics(reg, st)
	registerLineMetrics(reg, st, cfg)
	mux := http.NewServeMux()
	var runners []func(context.Context) error

	sw, err := swarmPart(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok && sw != nil {
			sw.Close()
		}
	}()

	var dash *dashboard.Dashboard
	if config.On(cfg.HTTP.Dashboard) {
		guard, err := operatorGuard(cfg, log)
		if err != nil {
			return nil, err
		}
		dash = dashboard.New(dashboard.Options{Store: st, Logger: log.With("component", "dashboard"), Registerer: reg,
			MaxClients: cfg.Limits.HTTP.MaxEventStreams, Operators: guard, LineView: dashboardLineView(cfg),
			Swarm: swarmFigures(sw, metrics)})
		dash.Register(mux)
	}
	opts := api.Options{Metrics: metrics, Logger: log.With("component", "api"), RetryAfter: cfg.Jobs.RetryAfter,
		Limits: api.Limits{BodyTimeout: cfg.Limits.HTTP.BodyTimeout, HelloMaxBody: int64(cfg.Limits.Hello.MaxBody),
			HelloMaxList: cfg.Limits.Hello.MaxListItems, HelloMaxString: cfg.Limits.Hello.MaxString},
		LineView: apiLineView(cfg, places)}
	if dash != nil {
		opts.Notifier = dash
	}
	for _, im := range cfg.Images {
		opts.ImageFiles = append(opts.ImageFiles, im.File)
	}
	if sw != nil {
		reg.MustRegister(sw.Collector())
		sw.Register(mux)
		opts.Torrents = sw
		runners = append(runners, sw.Run)
	}
	if config.On(cfg.HTTP.API) {
		key, err := loadKey(cfg, log)
		if err != nil {
			return nil, err
		}
		images, err := jobs.LoadImages(ctx, cfg.Images, jobs.ImageOptions{Dir: cfg.ImagesDir, Compute: config.On(cfg.Jobs.ComputeImageHashes),
			CacheFile: filepath.Join(cfg.DataDir, "image-hashes.json"), Logger: log.With("component", "images")})
		if err != nil {
			return nil, err
		}
		for _, im := range images {
			log.Info("image", "name", im.Name, "file", im.File, "format", im.Format, "sha256", im.SHA256, "size", im.Size, "from", im.Source)
		}
		jo := jobs.Options{Rules: cfg.Rules, Images: images, ScenariosDir: cfg.ScenariosDir,
			ImagesURL: cfg.HTTP.ImagesURL, ScenariosURL: cfg.HTTP.ScenariosURL, TTL: cfg.Jobs.TTL, Key: key}
		if sw != nil {
			jo.Swarm = sw
		}
		issuer, err := jobs.New(jo)
		if err != nil {
			return nil, err
		}
		if err := issuer.CheckScenarios(); err != nil {
			return nil, err
		}
		if len(cfg.Rules) == 0 {
			log.Warn("no rules: every device will be told that no rule matches it")
		}
		opts.Store, opts.Issuer = st, issuer
		if clock != nil {
			opts.Netboot = clock
		}
	}
	if config.On(cfg.HTTP.Images) {
		opts.ImagesDir = cfg.ImagesDir
	}
	if config.On(cfg.HTTP.Scenarios) {
		opts.ScenariosDir = cfg.ScenariosDir
	}
	opts.BootDir = cfg.HTTP.BootDir
	a, err := api.New(opts)
	if err != nil {
		return nil, err
	}
	a.Register(mux)
	if config.On(cfg.HTTP.Metrics) {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}

	tcp, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	lim := cfg.Limits.HTTP
	ln := httplimit.NewListener(tcp, lim.MaxConnsPerClient, lim.MaxConns, log.With("component", "http"))
	srv := &http.Server{
		// Downloads and live streams may rightly last long: they get a deadline that moves
		// with the client's progress; every other answer a read and a write deadline.
		Handler: metrics.Instrument(httplimit.Handler(mux, httplimit.Deadlines{Body: lim.BodyTimeout, Write: lim.WriteTimeout,
			Stall: lim.StallTimeout, Streaming: httplimit.StreamingPrefixes("/images/", "/scenarios/", "/boot/", "/dashboard/events", "/dashboard/api/export"),
			MaxStreamsPerClient: lim.MaxDownloadsPerClient, MaxStreams: lim.MaxDownloads})),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		// No server-wide ReadTimeout or WriteTimeout: either would cut image downloads and the
		// dashboard's live streams (a read deadline cancels the request's context).
		IdleTimeout:    lim.IdleTimeout,
		MaxHeaderBytes: int(lim.MaxHeaderBytes),
		ErrorLog:       slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
	}
	tlsOn := cfg.HTTP.TLSCert != ""
	if tlsOn {
		// Loaded now (not by ServeTLS) so that a bad or world-readable key fails at startup.
		tc, err := keys.ServerTLSConfig(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("http tls: %w", err)
		}
		if cfg.Operators.ClientCA != "" {
			if err := operatorauth.ConfigureTLS(tc, cfg.Operators.ClientCA); err != nil {
				ln.Close()
				return nil, err
			}
		}
		srv.TLSConfig = tc
	}
	log.Info("http listening", "addr", ln.Addr().String(), "tls", tlsOn, "api", config.On(cfg.HTTP.API),
		"images", opts.ImagesDir != "", "scenarios", opts.ScenariosDir != "", "boot", opts.BootDir != "", "dashboard", dash != nil, "metrics", config.On(cfg.HTTP.Metrics))

	dctx, dcancel := context.WithCancel(context.Background())
	if dash != nil {
		go dash.Run(dctx)
	}
	runners = append(runners, func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() {
			if tlsOn {
				errc <- srv.ServeTLS(ln, "", "") // certificate already in srv.TLSConfig
			} else {
				errc <- srv.Serve(ln)
			}
		}()
		select {
		case err := <-errc:
			dcancel()
			a.Close()
			return fmt.Errorf("http: %w", err)
		case <-ctx.Done():
		}
		// Live streams end first, or Shutdown would wait for them.
		dcancel()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		err := srv.Shutdown(sctx)
		a.Close()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("http shutdown: %w", err)
		}
		return nil
	})
	ok = true
	return runners, nil
}

// swarmFigures joins the seed's and the tracker's figures with the HTTP bytes of each image
// for the dashboard's swarm panel (nil without a swarm).
func swarmFigures(sw *swarm.Swarm, m *api.Metrics) func() []dashboard.SwarmImage {
	if sw == nil {
		return nil
	}
	return func() []dashboard.SwarmImage {
		httpBytes := m.ImageHTTPBytes()
		var out []dashboard.SwarmImage
		for _, st := range sw.Stats() {
			out = append(out, dashboard.SwarmImage{File: st.File, Peers: st.Peers, Seeders: st.Seeders, Leechers: st.Leechers,
				SeedBytes: st.Uploaded, HTTPBytes: httpBytes[st.File], Length: st.Length})
		}
		return out
	}
}

// swarmPart starts the BitTorrent tracker and seed when swarm is enabled (nil otherwise).
func swarmPart(ctx context.Context, cfg *config.Config, log *slog.Logger) (*swarm.Swarm, error) {
	if !cfg.Swarm.Enabled {
		return nil, nil
	}
	var files []string
	for _, im := range cfg.Images {
		if cfg.Swarm.ImageOn(im.File) {
			files = append(files, im.File)
		}
	}
	return swarm.New(ctx, swarm.Options{Dir: cfg.ImagesDir, Images: files, CacheFile: filepath.Join(cfg.DataDir, "swarm-metainfo.json"),
		PeerPort: cfg.Swarm.PeerPort, UploadRate: int64(cfg.Swarm.UploadRate), LingerSeconds: cfg.Swarm.LingerSeconds(),
		PublicURL: cfg.HTTP.PublicURL, ImagesURL: cfg.HTTP.ImagesURL, Logger: log.With("component", "swarm")})
}

// bootState answers pxecfg's question from the results store.
type bootState struct{ st store.Backend }

func (b bootState) BootMode(ctx context.Context, mac net.HardwareAddr) (pxecfg.Mode, error) {
	m, err := b.st.BootMode(ctx, mac.String())
	if err != nil {
		return pxecfg.Unknown, err
	}
	switch m {
	case store.BootLocal:
		return pxecfg.LocalBoot, nil
	case store.BootProvision:
		return pxecfg.Provision, nil
	}
	return pxecfg.Unknown, nil
}

// rebootWithin bounds the reboot timing: a passed device that netboots again later than this
// after its result was switched off or put aside rather than rebooted; nothing is recorded.
const rebootWithin = time.Hour

func tftpPart(cfg *config.Config, st store.Backend, clock *netbootclock.Clock, places *station.Resolver, log *slog.Logger) (func(context.Context) error, error) {
	p := cfg.TFTP.PXE
	unknown := pxecfg.Provision
	if p.UnknownDevices == "localboot" {
		unknown = pxecfg.LocalBoot
	}
	gen, err := pxecfg.New(pxecfg.Config{ServerURL: p.ServerURL, Kernel: p.Kernel, Initrd: p.Initrd, HTTPBase: p.HTTPBase,
		Consoles: p.Consoles, SerialPort: p.SerialPort, ExtraArgs: p.ExtraArgs, DefaultMode: unknown},
		pxecfg.Deps{State: bootState{st}, Logger: log, Station: places.ForMAC})
	if err != nil {
		return nil, err
	}
	listen := cfg.TFTP.Listen
	if listen == "" {
		listen = "0.0.0.0:69"
	}
	srv, err := tftp.New(tftp.Config{ListenAddr: listen, Interface: cfg.TFTP.Interface, Root: cfg.TFTP.Root,
		MaxTransfers: cfg.Limits.TFTP.MaxTransfers, MaxPerClient: cfg.Limits.TFTP.MaxPerClient,
		MaxLifetime: cfg.Limits.TFTP.MaxLifetime, MaxIdle: cfg.Limits.TFTP.MaxIdle},
		tftp.Deps{Logger: log, Virtual: gen.TFTPFile, OnTransfer: func(tr tftp.Transfer) {
			clock.Transfer(tr.Client.Addr(), tr.File, tr.Start, tr.End, tr.Err == nil)
			if mac, ok := netbootclock.ConfigMAC(tr.File); ok && tr.Err == nil {
				recordReboot(st, mac, tr.Start, log)
			}
		}})
	if err != nil {
		return nil, err
	}
	log.Info("tftp listening", "addr", srv.Addr().String(), "root", cfg.TFTP.Root, "server_url", p.ServerURL)
	return func(ctx context.Context) error {
		defer srv.Close()
		if err := srv.Serve(ctx); err != nil {
			return fmt.Errorf("tftp: %w", err)
		}
		return nil
	}, nil
}

// recordReboot records, when mac has just come back from the reboot after a pass, how long
// that took.
func recordReboot(st store.Backend, mac string, at time.Time, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run, d, err := st.RecordReboot(ctx, mac, at, rebootWithin)
	if err != nil {
		log.Warn("cannot record the reboot timing", "mac", mac, "err", err)
		return
	}
	if run != "" {
		log.Info("device back after its reboot", "mac", mac, "run", run, "reboot", d.Round(time.Millisecond))
	}
}

func dhcpPart(cfg *config.Config, clock *netbootclock.Clock, places *station.Resolver, log *slog.Logger) (func(context.Context) error, error) {
	d := cfg.DHCP
	addr := func(s string) netip.Addr {
		a, _ := netip.ParseAddr(s) // validated by config; "" gives the zero Addr (= default)
		return a
	}
	dc := dhcp.Config{Mode: dhcp.Mode(d.Mode), Interface: d.Interface, ListenAddr: d.Listen, PXEListenAddr: d.PXEListen,
		ServerIP: addr(d.ServerIP), NextServer: addr(d.NextServer),
		Boot:       dhcp.BootFiles{BIOS: d.Boot.BIOS, EFI64: d.Boot.EFI64, EFI32: d.Boot.EFI32, IPXE: d.Boot.IPXE},
		RangeStart: addr(d.RangeStart), RangeEnd: addr(d.RangeEnd), Router: addr(d.Router), LeaseTime: d.LeaseTime,
		PXEOnly: cfg.Limits.DHCP.NewLeases == "pxe", PXEReserve: 1 - *cfg.Limits.DHCP.NonPXEShare}
	if d.Subnet != "" {
		dc.Subnet, _ = netip.ParsePrefix(d.Subnet)
	}
	for _, s := range d.DNS {
		dc.DNS = append(dc.DNS, addr(s))
	}
	if d.Mode == string(dhcp.ModeFull) {
		dc.LeaseFile = filepath.Join(cfg.DataDir, "dhcp-leases.json")
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, err
		}
	}
	deps := dhcp.Deps{Logger: log}
	deps.OnReply = func(r dhcp.Reply) {
		if clock != nil {
			clock.DHCPReply(r.MAC, r.IP, r.PXE, r.Type == "ack", r.Time)
		}
		recordRelay(places, r, log)
	}
	srv, err := dhcp.New(dc, deps)
	if err != nil {
		return nil, err
	}
	log.Info("dhcp listening", "mode", d.Mode, "addr", srv.Addr().String(), "interface", d.Interface,
		"boot_bios", strings.TrimSpace(d.Boot.BIOS))
	return func(ctx context.Context) error {
		defer srv.Close()
		if err := srv.Serve(ctx); err != nil {
			return fmt.Errorf("dhcp: %w", err)
		}
		return nil
	}, nil
}
