package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/flashline/flashline/protocol"
)

// ExecParams configure exec.
type ExecParams struct {
	Command []string          `yaml:"command" json:"command" jsonschema:"minItems=1" jsonschema_description:"Program and arguments: a u-root command or a binary in the initramfs (no shell)"`
	Env     map[string]string `yaml:"env" json:"env,omitempty" jsonschema_description:"Extra environment variables"`
	Exit    int               `yaml:"exit" json:"exit,omitempty" jsonschema:"minimum=0,maximum=255,default=0" jsonschema_description:"Exit status that passes"`
	// Measure extracts a number from the output (the first capture group of Regexp) and
	// records it as a measurement named Name; Min and Max bound it.
	Measure *ExecMeasure `yaml:"measure" json:"measure,omitempty"`
}

// ExecMeasure extracts one numeric measurement from a command's output.
type ExecMeasure struct {
	Name   string   `yaml:"name" json:"name" jsonschema_description:"Measurement name, e.g. mbit_s"`
	Regexp string   `yaml:"regexp" json:"regexp" jsonschema_description:"Go regular expression; its first group is the number"`
	Unit   string   `yaml:"unit" json:"unit,omitempty"`
	Min    *float64 `yaml:"min" json:"min,omitempty"`
	Max    *float64 `yaml:"max" json:"max,omitempty"`
}

// maxExecOutput bounds the output kept from a command: the tail is what explains a failure.
const maxExecOutput = 64 << 10

// Exec is exec: run a program with the step's timeout; pass on the expected exit status.
func Exec() Kind {
	return Define("exec", "Run a program shipped in the initramfs; pass when it exits with exit (0).",
		nil,
		func(p ExecParams) []FieldError {
			var errs []FieldError
			if len(p.Command) == 0 || strings.TrimSpace(p.Command[0]) == "" {
				errs = append(errs, FieldError{"command", "must name a program"})
			}
			if p.Exit < 0 || p.Exit > 255 {
				errs = append(errs, FieldError{"exit", "must be in [0, 255]"})
			}
			if m := p.Measure; m != nil {
				if m.Name == "" {
					errs = append(errs, FieldError{"measure.name", "must be set"})
				}
				re, err := regexp.Compile(m.Regexp)
				switch {
				case err != nil:
					errs = append(errs, FieldError{"measure.regexp", err.Error()})
				case re.NumSubexp() < 1:
					errs = append(errs, FieldError{"measure.regexp", "needs a group (...) around the number"})
				}
				if m.Min != nil && m.Max != nil && *m.Min > *m.Max {
					errs = append(errs, FieldError{"measure.min", fmt.Sprintf("min %g > max %g can never pass", *m.Min, *m.Max)})
				}
			}
			return errs
		},
		func(p ExecParams) Check {
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				return runExec(ctx, p)
			})
		})
}

func runExec(ctx context.Context, p ExecParams) (Outcome, error) {
	cmd := exec.CommandContext(ctx, p.Command[0], p.Command[1:]...)
	if len(p.Env) > 0 {
		// The program inherits the agent's environment (PATH above all) plus the step's.
		cmd.Env = os.Environ()
		for _, k := range slices.Sorted(maps.Keys(p.Env)) {
			cmd.Env = append(cmd.Env, k+"="+p.Env[k])
		}
	}
	var out tailBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return Failf(nil, "%s: timed out", p.Command[0]), nil
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		return Outcome{}, fmt.Errorf("run %s: %w", p.Command[0], err)
	}
	output := out.String()
	ms := []protocol.Measurement{Num("exit_code", float64(code), "")}
	if last := lastLine(output); last != "" {
		ms = append(ms, Text("output", last))
	}
	if code != p.Exit {
		return Failf(ms, "%s exited %d, want %d: %s", p.Command[0], code, p.Exit, lastLine(output)), nil
	}
	if m := p.Measure; m != nil {
		re := regexp.MustCompile(m.Regexp) // validated
		sub := re.FindStringSubmatch(output)
		if sub == nil {
			return Failf(ms, "%s: output has no match for %q", p.Command[0], m.Regexp), nil
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(sub[1]), 64)
		if err != nil {
			return Failf(ms, "%s: %q is not a number", p.Command[0], sub[1]), nil
		}
		ms = append(ms, Num(m.Name, v, m.Unit))
		if m.Min != nil && v < *m.Min {
			return Failf(ms, "%s %g%s < %g", m.Name, v, m.Unit, *m.Min), nil
		}
		if m.Max != nil && v > *m.Max {
			return Failf(ms, "%s %g%s > %g", m.Name, v, m.Unit, *m.Max), nil
		}
		return Passf(ms, "%s %g%s", m.Name, v, m.Unit), nil
	}
	return Passf(ms, "%s exited %d", p.Command[0], code), nil
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\r\n\t ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.TrimSpace(s)
}

// tailBuffer keeps the last maxExecOutput bytes written to it.
type tailBuffer struct{ b bytes.Buffer }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b.Write(p)
	if over := t.b.Len() - maxExecOutput; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return t.b.String() }
