package main

import (
	"context"
	"fmt"
	"os"
)

// cmdFlash is not written yet: its owner replaces this file.
func cmdFlash(ctx context.Context, args []string) int {
	fmt.Fprintln(os.Stderr, "flashline-agent flash: not implemented yet")
	return 1
}
