package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/flashline/flashline/server/config"
)

// cmdCheck prints every problem of a configuration, and of the files and scenarios it names
// on this host, as FILE:LINE:COL: message, and exits 1 when there is one.
func cmdCheck(_ context.Context, args []string) int {
	return runCheck(os.Stdout, os.Stderr, args)
}

func runCheck(stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", DefaultConfig, "configuration file to check")
	fileOnly := fs.Bool("file-only", false, "check the file alone, not the files, scenarios and interfaces it names on this host")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flashline-server check [-config FILE] [-file-only]")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "flashline-server check: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	_, ps := config.CheckFile(*cfgPath, checkOptions(!*fileOnly))
	for _, p := range ps {
		fmt.Fprintln(stdout, p.Error())
	}
	if len(ps) > 0 {
		fmt.Fprintf(stderr, "%s: %d problems\n", *cfgPath, len(ps))
		return 1
	}
	fmt.Fprintf(stderr, "%s: ok\n", *cfgPath)
	return 0
}

// parseFlags parses args the way every subcommand does: -h prints the usage on stdout and
// exits 0, a bad flag is a usage error (2). done reports that the caller must return code.
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case err == flag.ErrHelp:
		return 0, true
	case err != nil:
		return 2, true
	}
	return 0, false
}
