package main

import (
	"context"
	"fmt"
	"os"
)

// cmdInventory is not written yet: its owner replaces this file.
func cmdInventory(ctx context.Context, args []string) int {
	fmt.Fprintln(os.Stderr, "flashline-agent inventory: not implemented yet")
	return 1
}
