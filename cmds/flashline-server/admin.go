package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/flashline/flashline/server/config"
	"github.com/flashline/flashline/server/store"
)

// DefaultConfig is where the config file is looked for when -config is not given.
const DefaultConfig = "/etc/flashline/server.yaml"

// dbFile is the results database's name inside data_dir.
const dbFile = "results.db"

// openExisting opens the results database of a config's data_dir (or of -data), refusing to
// create an empty one: a typo in the path must not look like "no runs". With store driver
// postgres, exports read the whole plant and a reset reaches the plant database too.
func openExisting(ctx context.Context, cfgPath, dataDir string) (store.Backend, error) {
	c := &config.Config{}
	if dataDir == "" {
		var err error
		if c, err = config.Load(cfgPath); err != nil {
			return nil, err
		}
		if c.DataDir == "" {
			return nil, fmt.Errorf("%s has no data_dir", cfgPath)
		}
	} else {
		c.DataDir = dataDir
	}
	p := filepath.Join(c.DataDir, dbFile)
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("no results database: %w", err)
	}
	return openStore(ctx, c, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// openStore opens the results store the configuration names: the line's SQLite file in
// data_dir, alone or in front of the plant's PostgreSQL database.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Backend, error) {
	path := filepath.Join(cfg.DataDir, dbFile)
	if cfg.Store.Driver == store.DriverPostgres {
		return store.OpenPlant(ctx, store.PlantOptions{Path: path, DSN: cfg.Store.DSN, Line: cfg.Line,
			AckWait: cfg.Store.AckWait, Logger: log.With("part", "store")})
	}
	return store.OpenOptions(ctx, store.Options{Path: path, Line: cfg.Line})
}

// cmdExport writes one serial's history as JSON or CSV.
func cmdExport(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cfgPath := fs.String("config", DefaultConfig, "server configuration file (for data_dir)")
	dataDir := fs.String("data", "", "data directory (instead of -config)")
	serial := fs.String("serial", "", "device serial number (DMI)")
	format := fs.String("format", "json", "json or csv")
	out := fs.String("o", "-", "output file, - for stdout")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	const exportUsage = "usage: flashline-server export -serial S [-format json|csv] [-config FILE | -data DIR] [-o FILE]"
	switch {
	case !isSet(fs, "serial") || *serial == "":
		fmt.Fprintf(os.Stderr, "flashline-server export: -serial is required\n%s\n", exportUsage)
		return 2
	case fs.NArg() != 0:
		fmt.Fprintf(os.Stderr, "flashline-server export: unexpected argument %q\n%s\n", fs.Arg(0), exportUsage)
		return 2
	case *format != "json" && *format != "csv":
		fmt.Fprintf(os.Stderr, "flashline-server export: unknown format %q: the formats are json and csv\n%s\n", *format, exportUsage)
		return 2
	}
	st, err := openExisting(ctx, *cfgPath, *dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server export: %v\n", err)
		return 1
	}
	defer st.Close()
	// An unknown serial is an error, not an empty export: a typo must not look like a device
	// that never ran. Checked before -o creates its file.
	runs, err := st.History(ctx, *serial, store.HistoryOptions{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server export: %v\n", err)
		return 1
	}
	if len(runs) == 0 {
		fmt.Fprintf(os.Stderr, "flashline-server export: serial %q not found: no runs in the results database\n", *serial)
		return 1
	}
	var w io.Writer = os.Stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.Create(*out); err != nil {
			fmt.Fprintf(os.Stderr, "flashline-server export: %v\n", err)
			return 1
		}
		w = f
	}
	if *format == "csv" {
		err = st.ExportCSV(ctx, w, *serial)
	} else {
		err = st.ExportJSON(ctx, w, *serial)
	}
	if f != nil {
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server export: %v\n", err)
		return 1
	}
	return 0
}

// cmdReset puts a device back on provisioning: its next netboot runs the agent again.
func cmdReset(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("reset", flag.ContinueOnError)
	cfgPath := fs.String("config", DefaultConfig, "server configuration file (for data_dir)")
	dataDir := fs.String("data", "", "data directory (instead of -config)")
	mac := fs.String("mac", "", "MAC address of the device's boot NIC")
	actor := fs.String("actor", "", "who resets, for the audit log (default the local user@host)")
	reason := fs.String("reason", "", "why, for the audit log")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *mac == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "flashline-server reset: -mac is required (and takes no arguments)\nusage: flashline-server reset -mac aa:bb:cc:dd:ee:ff [-actor NAME] [-reason TEXT] [-config FILE | -data DIR]")
		return 2
	}
	if *actor != "" && !config.ValidOperatorName(*actor) {
		fmt.Fprintf(os.Stderr, "flashline-server reset: -actor %q: want 1 to 64 letters, digits, '.', '_', '-' or '@'\n", *actor)
		return 2
	}
	st, err := openExisting(ctx, *cfgPath, *dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server reset: %v\n", err)
		return 1
	}
	defer st.Close()
	detail := "flashline-server reset"
	if *reason != "" {
		detail += ": " + *reason
	}
	if err := st.ResetDeviceBy(ctx, *mac, cliActor(*actor), detail); err != nil {
		fmt.Fprintf(os.Stderr, "flashline-server reset: %v\n", err)
		return 1
	}
	m, _ := store.NormalizeMAC(*mac)
	fmt.Printf("%s will be provisioned again at its next netboot\n", m)
	return 0
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
