package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/flashline/flashline/internal/buildinfo"
)

// cmdVersion prints which build this is: `flashline-agent VERSION, built DATE, GO` (or -json).
func cmdVersion(_ context.Context, args []string) int { return version(os.Stdout, os.Stderr, args) }

func version(stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print version, date and go as JSON")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "flashline-agent version: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	info := buildinfo.Get()
	if *asJSON {
		b, _ := json.Marshal(info)
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprintf(stdout, "flashline-agent %s\n", info)
	return 0
}
