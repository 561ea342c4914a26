package main

import (
	"context"
	"fmt"
	"os"
)

// cmdScenario is not written yet: its owner replaces this file.
func cmdScenario(ctx context.Context, args []string) int {
	fmt.Fprintln(os.Stderr, "flashline-agent scenario: not implemented yet")
	return 1
}
