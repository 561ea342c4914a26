package main

import (
	"context"
	"fmt"
	"os"
)

// cmdRun is not written yet: its owner replaces this file.
func cmdRun(ctx context.Context, args []string) int {
	fmt.Fprintln(os.Stderr, "flashline-agent run: not implemented yet")
	return 1
}
