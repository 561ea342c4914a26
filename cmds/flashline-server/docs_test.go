package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDocumentedCommands runs every flashline-server command line of docs/line-host.md with
// -h appended: the flags parse first, so an unknown subcommand or a flag the docs name but
// the binary lacks fails (exit 2) instead of printing the help (exit 0). The docs cannot
// drift from the command line.
func TestDocumentedCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	var cmds [][]string
	for _, doc := range []string{"../../docs/line-host.md", "../../docs/server.md"} {
		f, err := os.Open(doc)
		if err != nil {
			t.Fatal(err)
		}
		inBlock := false
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "```") {
				inBlock = !inBlock
				continue
			}
			if !inBlock || !strings.HasPrefix(line, "flashline-server ") {
				continue
			}
			line, _, _ = strings.Cut(line, "#")
			// Optional parts ([-force], [-mode proxy|full]) are written in brackets: drop them.
			var args []string
			depth := 0
			for _, w := range strings.Fields(line)[1:] {
				if strings.HasPrefix(w, "[") {
					depth++
				}
				if depth == 0 {
					args = append(args, w)
				}
				if strings.HasSuffix(w, "]") && depth > 0 {
					depth--
				}
			}
			cmds = append(cmds, args)
		}
		f.Close()
	}
	if len(cmds) < 5 {
		t.Fatalf("found only %d documented commands", len(cmds))
	}
	for _, args := range cmds {
		out, err := exec.Command(bin, append(args, "-h")...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Errorf("documented %q: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
