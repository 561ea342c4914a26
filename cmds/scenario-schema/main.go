// Command scenario-schema writes the JSON Schema of scenario files, generated from the Go
// types of agent/scenario and of every check kind, for editors running the YAML language
// server (scenarios start with `# yaml-language-server: $schema=./scenario.schema.json`).
//
//	go run ./cmds/scenario-schema                 # rewrite scenarios/scenario.schema.json
//	go run ./cmds/scenario-schema -check          # exit 1 if the committed file is stale
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/scenario/schema"
)

func main() {
	out := flag.String("o", "scenarios/scenario.schema.json", "file to write (- for stdout)")
	check := flag.Bool("check", false, "do not write: exit 1 when the file differs from the generated schema")
	flag.Parse()
	b, err := schema.Generate(checks.Default())
	if err != nil {
		fmt.Fprintf(os.Stderr, "scenario-schema: %v\n", err)
		os.Exit(1)
	}
	switch {
	case *check:
		old, err := os.ReadFile(*out)
		if err != nil || !bytes.Equal(old, b) {
			fmt.Fprintf(os.Stderr, "scenario-schema: %s is out of date: run go run ./cmds/scenario-schema\n", *out)
			os.Exit(1)
		}
	case *out == "-":
		os.Stdout.Write(b)
	default:
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "scenario-schema: %v\n", err)
			os.Exit(1)
		}
	}
}
