package checks

import (
	"regexp"
	"strings"

	"github.com/flashline/flashline/protocol"
)

// Num returns a numeric measurement.
func Num(name string, v float64, unit string) protocol.Measurement {
	return protocol.Measurement{Name: name, Value: &v, Unit: unit}
}

// Text returns a textual measurement.
func Text(name, s string) protocol.Measurement {
	return protocol.Measurement{Name: name, Text: s}
}

// MatchGlob reports whether s matches the shell-style pattern: '*' any run of characters
// (slashes included, unlike path.Match: DMI product names contain them), '?' one character,
// compared case-insensitively. An empty pattern matches everything.
func MatchGlob(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	var b strings.Builder
	b.WriteString("(?is)^")
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return false
	}
	return re.MatchString(s)
}
