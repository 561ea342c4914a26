package checks

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes written in a scenario as a plain integer (bytes) or a number with
// a unit: decimal kB, MB, GB, TB (powers of 1000, as disk vendors count) or binary KiB, MiB,
// GiB, TiB (powers of 1024, as the kernel counts memory). Units are case-insensitive; a bare
// "B" is bytes. "16GB" is 16,000,000,000 bytes, "16GiB" is 17,179,869,184.
type Size int64

// SizePattern is the regular expression a Size string matches (the JSON Schema uses it).
const SizePattern = `^\s*[0-9]+(\.[0-9]+)?\s*([kKmMgGtT]([iI])?)?[bB]?\s*$`

var sizeRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$`)

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20,
	"gi": 1 << 30, "gib": 1 << 30, "ti": 1 << 40, "tib": 1 << 40,
}

// ParseSize parses a size as written in a scenario.
func ParseSize(s string) (Size, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size: write bytes (1048576) or a number with a unit (16GB, 512MiB)", s)
	}
	mult, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("%q: unknown size unit %q (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)", s, m[2])
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %w", s, err)
	}
	v := n * mult
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(math.Round(v)), nil
}

// UnmarshalYAML accepts an integer or a size string.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("a size must be a number of bytes or a string such as 16GB")
	}
	if n.Tag == "!!int" {
		v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("%q is not a size in bytes", n.Value)
		}
		*s = Size(v)
		return nil
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String formats the size readably: exactly in the largest unit that divides it (decimal
// first) when that needs fewer than five digits, otherwise to two decimals in binary units.
func (s Size) String() string {
	v := int64(s)
	if v == 0 {
		return "0B"
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"TB", 1e12}, {"TiB", 1 << 40}, {"GB", 1e9}, {"GiB", 1 << 30}, {"MB", 1e6}, {"MiB", 1 << 20}, {"kB", 1e3}, {"KiB", 1 << 10}} {
		if v >= u.mult && v%u.mult == 0 && v/u.mult < 10000 {
			return fmt.Sprintf("%d%s", v/u.mult, u.name)
		}
	}
	switch {
	case v >= 1<<40:
		return fmt.Sprintf("%.2fTiB", float64(v)/(1<<40))
	case v >= 1<<30:
		return fmt.Sprintf("%.2fGiB", float64(v)/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.2fMiB", float64(v)/(1<<20))
	}
	return fmt.Sprintf("%dB", v)
}

// Duration is a time span written in Go syntax: "20s", "1m30s", "500ms". A bare number is
// an error: "20" could mean seconds or milliseconds.
type Duration time.Duration

// DurationPattern is the regular expression a Duration matches (the JSON Schema uses it).
const DurationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`

// ParseDuration parses a non-negative duration in Go syntax.
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if _, nerr := strconv.ParseFloat(strings.TrimSpace(s), 64); nerr == nil {
			return 0, fmt.Errorf("duration %q needs a unit, e.g. %ss or %sms", s, s, s)
		}
		return 0, fmt.Errorf("%q is not a duration (write e.g. 20s, 1m30s, 500ms)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML accepts a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("a duration must be a string such as 20s")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d in Go syntax.
func (d Duration) String() string { return time.Duration(d).String() }
