package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIConventions runs the built agent: -h exits 0 for every subcommand, usage errors
// exit 2 with a message saying what is wrong.
func TestCLIConventions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	bin := filepath.Join(t.TempDir(), "flashline-agent")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		code     int
		inOutput string
	}{
		{[]string{"-h"}, 0, "usage: flashline-agent"},
		{[]string{"help"}, 0, "usage: flashline-agent"},
		{[]string{"run", "-h"}, 0, "usage: flashline-agent run"},
		{[]string{"flash", "-h"}, 0, "usage: flashline-agent flash"},
		{[]string{"inventory", "-h"}, 0, "-compact"},
		{[]string{"scenario", "-h"}, 0, "scenario lint FILE"},
		{[]string{"scenario", "lint", "-h"}, 0, "scenario lint FILE"},
		{[]string{"scenario", "run", "-h"}, 0, "-color"},
		{[]string{"bogus"}, 2, `unknown subcommand "bogus"`},
		{[]string{"run", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"flash"}, 2, "need SOURCE and TARGET"},
		{[]string{"flash", "--nope", "a", "b"}, 2, "flag provided but not defined: -nope"},
		{[]string{"inventory", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"scenario"}, 2, "missing subcommand (lint or run)"},
		{[]string{"scenario", "frob"}, 2, `unknown subcommand "frob"`},
		{[]string{"scenario", "lint"}, 2, "no files given"},
		{[]string{"scenario", "run"}, 2, "want one FILE, got 0 arguments"},
		{[]string{"scenario", "lint", "../../scenarios/gm-box-qemu.yaml"}, 0, ""},
		{[]string{"scenario", "lint", "no-such.yaml"}, 1, "no-such.yaml:1:1:"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			cmd := exec.Command(bin, tt.args...)
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(out.String(), tt.inOutput) {
				t.Errorf("exit %d, want %d; output should contain %q:\n%s", code, tt.code, tt.inOutput, out.String())
			}
		})
	}
}
