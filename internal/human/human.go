// Package human formats numbers and messages for the people at a line's consoles.
package human

import (
	"fmt"
	"strings"
)

// Bytes is n in binary units: "512 B", "1.5 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// OneLine folds s onto one line, runs of white space (newlines included) made one space: a
// library's multi-line error must not break a console line or a report field.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
