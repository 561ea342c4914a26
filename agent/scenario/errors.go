package scenario

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a scenario file, at a position.
type Error struct {
	File string
	Line int // from 1
	Col  int // from 1
	Msg  string
}

func (e Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every problem found in a file, in file order.
type ErrorList []Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// sortDedup orders the errors by position and drops repeats (lint decodes steps once per
// variant, so one mistake could otherwise be reported once per variant).
func (l ErrorList) sortDedup() ErrorList {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Col < l[j].Col
	})
	out := l[:0]
	seen := map[Error]bool{}
	for _, e := range l {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// errs collects errors for one file.
type errs struct {
	file string
	list ErrorList
	// nodes counts the nodes substitution has copied: aliases are expanded, and a few nested
	// anchors could otherwise expand exponentially ("billion laughs").
	nodes    int
	overflow bool
}

// maxNodes bounds the nodes of a scenario after alias expansion.
const maxNodes = 100000

func (e *errs) at(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, max(n.Column, 1)
	}
	e.list = append(e.list, Error{File: e.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}
