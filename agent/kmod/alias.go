package kmod

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Alias is one line of modules.alias: devices whose modalias matches Pattern (a shell glob
// with *, ? and [...]) are driven by Module.
type Alias struct {
	Pattern string
	Module  string
}

// Aliases is a parsed modules.alias, indexed for matching many modaliases quickly.
type Aliases struct {
	list []Alias
	// byPrefix groups patterns by their literal text before the first ':' (the bus: "pci",
	// "usb", "acpi*" ...) when that text has no wildcard; the rest are in wild.
	byPrefix map[string][]int
	wild     []int
}

// ParseAliases reads modules.alias. Comment and malformed lines are skipped: the file comes
// from depmod and one bad line must not stop a device from booting.
func ParseAliases(r io.Reader) (*Aliases, error) {
	a := &Aliases{byPrefix: map[string][]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "alias" {
			continue
		}
		if _, err := path.Match(f[1], ""); err != nil {
			continue // a pattern path.Match cannot use would never match anyway
		}
		a.add(Alias{Pattern: f[1], Module: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.alias: %w", err)
	}
	return a, nil
}

func (a *Aliases) add(al Alias) {
	i := len(a.list)
	a.list = append(a.list, al)
	bus, _, found := strings.Cut(al.Pattern, ":")
	if found && !strings.ContainsAny(bus, `*?[\`) {
		a.byPrefix[bus] = append(a.byPrefix[bus], i)
		return
	}
	a.wild = append(a.wild, i)
}

// Len returns the number of aliases.
func (a *Aliases) Len() int { return len(a.list) }

// Match returns the modules whose patterns match modalias, sorted, without duplicates. Glob
// matching follows fnmatch(3) as modprobe does; modaliases contain no '/', so path.Match is
// equivalent here.
func (a *Aliases) Match(modalias string) []string {
	seen := map[string]bool{}
	try := func(idx []int) {
		for _, i := range idx {
			al := a.list[i]
			if seen[al.Module] {
				continue
			}
			if ok, _ := path.Match(al.Pattern, modalias); ok {
				seen[al.Module] = true
			}
		}
	}
	if bus, _, found := strings.Cut(modalias, ":"); found {
		try(a.byPrefix[bus])
	}
	try(a.wild)
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
