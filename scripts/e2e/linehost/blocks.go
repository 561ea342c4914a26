package linehost

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Where a block of the page runs.
const (
	Build    = "build"     // on the build machine, in the checkout
	LineHost = "line-host" // on the line host, as root
	Config   = "config"    // YAML merged into a file on the line host
	Skip     = "skip"      // not run
)

// Block is one fenced block of the page with its doc-test comment.
type Block struct {
	Line  int    // line number of the opening fence
	Lang  string // sh, yaml, ...
	Where string // Build, LineHost, Config or Skip
	// Args are the comment's words after Where: "device-passed" for LineHost, the file for
	// Config, the reason for Skip.
	Args []string
	Text string
}

// After reports whether the block is marked to run only once event (e.g. "device-passed")
// has happened.
func (b Block) After(event string) bool {
	for _, a := range b.Args {
		if a == event {
			return true
		}
	}
	return false
}

const marker = "<!-- doc-test"

// ParseBlocks returns the fenced blocks of a Markdown page in order. Every block must be
// preceded (on its previous non-blank line) by a doc-test comment: a block that says nothing
// about where it runs is an error, so that a new command cannot slip into the page untested
// without someone deciding so.
func ParseBlocks(page []byte) ([]Block, error) {
	var (
		blocks  []Block
		errs    []string
		prev    string // previous non-blank line outside a block
		cur     *Block
		body    strings.Builder
		lineNum int
	)
	sc := bufio.NewScanner(bytes.NewReader(page))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur != nil {
			if trimmed == "```" {
				cur.Text = body.String()
				blocks = append(blocks, *cur)
				cur, prev = nil, ""
				continue
			}
			body.WriteString(line)
			body.WriteByte('\n')
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			b := Block{Line: lineNum, Lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
			where, args, err := parseMarker(prev)
			if err != nil {
				errs = append(errs, fmt.Sprintf("line %d: %v", lineNum, err))
			}
			b.Where, b.Args = where, args
			cur = &b
			body.Reset()
			continue
		}
		if trimmed != "" {
			prev = trimmed
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		errs = append(errs, fmt.Sprintf("line %d: block not closed", cur.Line))
	}
	if len(errs) > 0 {
		return blocks, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return blocks, nil
}

func parseMarker(s string) (string, []string, error) {
	if !strings.HasPrefix(s, marker) || !strings.HasSuffix(s, "-->") {
		return "", nil, fmt.Errorf("fenced block without a %s ... --> comment on the line before it (say where it runs: %s, %s, %s FILE or %s: REASON)", marker, Build, LineHost, Config, Skip)
	}
	inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, marker), "-->"))
	if rest, ok := strings.CutPrefix(inner, Skip+":"); ok {
		if strings.TrimSpace(rest) == "" {
			return "", nil, fmt.Errorf("%s: needs a reason", Skip)
		}
		return Skip, []string{strings.TrimSpace(rest)}, nil
	}
	f := strings.Fields(inner)
	if len(f) == 0 {
		return "", nil, fmt.Errorf("empty doc-test comment")
	}
	switch f[0] {
	case Build:
		if len(f) > 1 {
			return "", nil, fmt.Errorf("%s takes no arguments, got %q", Build, f[1:])
		}
	case LineHost:
		for _, a := range f[1:] {
			if a != "device-passed" {
				return "", nil, fmt.Errorf("%s: unknown condition %q (device-passed)", LineHost, a)
			}
		}
	case Config:
		if len(f) != 2 || !strings.HasPrefix(f[1], "/") {
			return "", nil, fmt.Errorf("%s: want one absolute file name", Config)
		}
	default:
		return "", nil, fmt.Errorf("doc-test %q: want %s, %s, %s FILE or %s: REASON", f[0], Build, LineHost, Config, Skip)
	}
	return f[0], f[1:], nil
}

// MergeConfig replaces each top-level `KEY: []` line of file with the section of the same
// key in snippet (what the page tells the engineer to do by hand). A key of snippet that
// file does not hold as `KEY: []` is an error: the page and the generated file disagree.
func MergeConfig(file, snippet []byte) ([]byte, error) {
	sections := map[string]string{}
	var order []string
	var key string
	for _, line := range strings.SplitAfter(string(snippet), "\n") {
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '#' && line[0] != '\n' {
			k, _, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("snippet line %q: not a top-level key", strings.TrimSpace(line))
			}
			key = strings.TrimSpace(k)
			if _, dup := sections[key]; dup {
				return nil, fmt.Errorf("snippet: key %s twice", key)
			}
			order = append(order, key)
		}
		if key == "" {
			continue
		}
		sections[key] += line
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("snippet has no top-level key")
	}
	out := string(file)
	for _, k := range order {
		var found bool
		lines := strings.SplitAfter(out, "\n")
		for i, l := range lines {
			if strings.TrimRight(l, "\n") == k+": []" {
				s := sections[k]
				if !strings.HasSuffix(s, "\n") {
					s += "\n"
				}
				lines[i] = s
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("no line %q to replace", k+": []")
		}
		out = strings.Join(lines, "")
	}
	return []byte(out), nil
}
