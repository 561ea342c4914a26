package main

import (
	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/server/config"
)

// checkOptions are the configuration checks every subcommand runs. The scenario language
// belongs to the agent; the server lints with it so that a rule whose scenario would fail on
// the device is refused before a device ever boots.
func checkOptions(host bool) config.CheckOptions {
	return config.CheckOptions{Host: host, LintScenario: lintScenario}
}

func lintScenario(path string) config.Problems {
	var ps config.Problems
	for _, e := range scenario.LintFile(path, checks.Default()) {
		ps = append(ps, config.Problem{File: e.File, Line: e.Line, Col: e.Col, Msg: e.Msg})
	}
	return ps
}
