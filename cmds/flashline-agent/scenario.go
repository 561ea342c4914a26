package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/inventory"
	"github.com/flashline/flashline/agent/operator"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/protocol"
)

const scenarioUsage = `usage:
  flashline-agent scenario lint FILE...     check scenario files; every error as FILE:LINE:COL: message
  flashline-agent scenario run [flags] FILE run a scenario on this machine and print the results
`

// cmdScenario dispatches scenario lint and scenario run.
func cmdScenario(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, "flashline-agent scenario: missing subcommand (lint or run)\n"+scenarioUsage)
		return 2
	}
	switch args[0] {
	case "lint":
		return scenarioLint(os.Stdout, os.Stderr, args[1:])
	case "run":
		return scenarioRun(ctx, os.Stdout, os.Stderr, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(os.Stdout, scenarioUsage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "flashline-agent scenario: unknown subcommand %q\n%s", args[0], scenarioUsage)
	return 2
}

// scenarioLint prints every error of every file and exits 1 when there was any.
func scenarioLint(stdout, stderr io.Writer, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "flashline-agent scenario lint: no files given\n"+scenarioUsage)
		return 2
	}
	// Flags are not parsed (every argument is a file), but -h is the universal ask for help;
	// a scenario file really named -h can be given as ./-h.
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, scenarioUsage)
		return 0
	}
	reg := checks.Default()
	bad := 0
	for _, f := range args {
		errs := scenario.LintFile(f, reg)
		for _, e := range errs {
			fmt.Fprintln(stdout, e.Error())
		}
		if len(errs) > 0 {
			bad++
		}
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "%d of %d scenario files have errors\n", bad, len(args))
		return 1
	}
	return 0
}

// scenarioRun runs one scenario against this machine's hardware.
func scenarioRun(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("scenario run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "/", "root of the system tree (sys/, proc/, dev/) the checks read")
	force := fs.Bool("force", false, "run even when the scenario's match excludes this device")
	jsonOut := fs.String("json", "", "also write the step results as JSON to this file (- for stdout)")
	verbose := fs.Bool("v", false, "log the checks' diagnostics to stderr")
	colorMode := fs.String("color", "auto", "ANSI colour: auto (a terminal, TERM, no NO_COLOR), always or never")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "flashline-agent scenario run: want one FILE, got %d arguments\n%s", fs.NArg(), scenarioUsage)
		return 2
	}
	file := fs.Arg(0)
	reg := checks.DefaultAt(checks.System{Sys: filepath.Join(*root, "sys"), Dev: filepath.Join(*root, "dev")})
	sc, err := scenario.ParseFile(file, reg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	invReader := inventory.Reader{Root: *root}
	inv, err := invReader.Inventory(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "read inventory: %v\n", err)
		return 1
	}
	if *force {
		sc.Match = nil
	}
	plan, err := sc.Plan(inv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		if errors.Is(err, scenario.ErrNotApplicable) {
			fmt.Fprintln(stderr, "(use --force to run it anyway)")
			return 3
		}
		return 1
	}
	color := operator.ColorAuto(stdout, os.Getenv)
	switch *colorMode {
	case "always":
		color = true
	case "never":
		color = false
	}
	con := operator.New(stdout, color)
	logLevel := slog.LevelWarn
	if *verbose {
		logLevel = slog.LevelDebug
	}
	r := &scenario.Runner{
		Inventory: invReader,
		Operator:  con,
		Log:       slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel})),
		OnEvent:   con.Event,
	}
	con.Plan(sc.Name, plan)
	rep := r.Run(ctx, plan)
	con.Summary(sc.Name, rep)
	if *jsonOut != "" {
		if err := writeResults(*jsonOut, stdout, sc.Name, rep); err != nil {
			fmt.Fprintf(stderr, "write results: %v\n", err)
			return 1
		}
	}
	if rep.Status != protocol.StatusPass {
		return 1
	}
	return 0
}

func writeResults(path string, stdout io.Writer, name string, rep scenario.Report) error {
	out := struct {
		Scenario   string                `json:"scenario"`
		Status     protocol.Status       `json:"status"`
		FailedStep string                `json:"failed_step,omitempty"`
		Reason     string                `json:"reason,omitempty"`
		Steps      []protocol.StepResult `json:"steps"`
	}{name, rep.Status, rep.FailedStep, rep.Reason, rep.Steps}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // reasons say ">= 16GB"
	if err := enc.Encode(out); err != nil {
		return err
	}
	if path == "-" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
