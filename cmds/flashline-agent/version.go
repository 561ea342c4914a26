package main

import (
	"context"
	"os"

	"github.com/flashline/flashline/internal/buildinfo"
)

// cmdVersion prints which build this is (buildinfo.Command).
func cmdVersion(_ context.Context, args []string) int {
	return buildinfo.Command("flashline-agent", os.Stdout, os.Stderr, args)
}
