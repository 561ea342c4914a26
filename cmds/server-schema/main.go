// Command server-schema writes the JSON Schema of flashline-server's configuration file,
// generated from the Go types of server/config, for editors running the YAML language server
// (docs/server.example.yaml starts with `# yaml-language-server: $schema=./server.schema.json`).
//
//	go run ./cmds/server-schema                 # rewrite docs/server.schema.json
//	go run ./cmds/server-schema -check          # exit 1 if the committed file is stale
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/flashline/flashline/server/config/schema"
)

func main() {
	out := flag.String("o", "docs/server.schema.json", "file to write (- for stdout)")
	check := flag.Bool("check", false, "do not write: exit 1 when the file differs from the generated schema")
	flag.Parse()
	b, err := schema.Generate()
	if err != nil {
		fmt.Fprintf(os.Stderr, "server-schema: %v\n", err)
		os.Exit(1)
	}
	switch {
	case *check:
		old, err := os.ReadFile(*out)
		if err != nil || !bytes.Equal(old, b) {
			fmt.Fprintf(os.Stderr, "server-schema: %s is out of date: run go run ./cmds/server-schema\n", *out)
			os.Exit(1)
		}
	case *out == "-":
		os.Stdout.Write(b)
	default:
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "server-schema: %v\n", err)
			os.Exit(1)
		}
	}
}
