package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/flashline/flashline/agent/inventory"
)

// cmdInventory prints the hardware inventory as JSON.
func cmdInventory(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	root := fs.String("root", "/", "root of the tree holding sys/ and proc/ (for testing on a copied tree)")
	compact := fs.Bool("compact", false, "print the JSON on one line")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "flashline-agent inventory: unexpected argument %q\nusage: flashline-agent inventory [--root DIR] [--compact]\n", fs.Arg(0))
		return 2
	}
	inv, err := inventory.Reader{Root: *root}.Inventory(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flashline-agent inventory: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if !*compact {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(inv); err != nil {
		fmt.Fprintf(os.Stderr, "flashline-agent inventory: %v\n", err)
		return 1
	}
	return 0
}
