// Command ldflags prints the -ldflags value that stamps the checkout's git description and the
// build time into a Flashline binary (see package buildinfo); the Makefile uses it.
package main

import (
	"fmt"

	"github.com/flashline/flashline/internal/buildinfo"
)

func main() {
	fmt.Println(buildinfo.Stamp("."))
}
