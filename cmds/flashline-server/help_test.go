package main

import (
	"bytes"
	"os/exec"
	"testing"
)

// TestEverySubcommandHelp: -h and --help exit 0 and print something for every subcommand,
// including those added after this test (the table is the binary's own).
func TestEverySubcommandHelp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	bin := buildServer(t)
	for name := range subcommands {
		for _, h := range []string{"-h", "--help"} {
			var out bytes.Buffer
			cmd := exec.Command(bin, name, h)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil || out.Len() == 0 {
				t.Errorf("flashline-server %s %s: %v, %d bytes of help", name, h, err, out.Len())
			}
		}
	}
}
