package buildinfo

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

// Command is the `version` subcommand both binaries share: `NAME VERSION, built DATE, GO` on
// stdout, or the Info as JSON with -json. It returns the exit status (2 for usage errors).
func Command(name string, stdout, stderr io.Writer, args []string) int {
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
		fmt.Fprintf(stderr, "%s version: unexpected argument %q\n", name, fs.Arg(0))
		return 2
	}
	info := Get()
	if *asJSON {
		b, _ := json.Marshal(info)
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprintf(stdout, "%s %s\n", name, info)
	return 0
}
