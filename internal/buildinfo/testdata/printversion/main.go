// Command printversion prints buildinfo.Get(), for TestStampLinks.
package main

import (
	"fmt"

	"github.com/flashline/flashline/internal/buildinfo"
)

func main() { fmt.Println(buildinfo.Get()) }
