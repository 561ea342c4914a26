// Package scenario reads, checks and runs scenarios: YAML files in which test engineers list
// the functional tests of a device variant, run by the agent before anything is flashed.
//
// Parse decodes a file strictly against the check kinds of a checks.Registry and reports
// every problem (unknown keys, wrong types, unknown kinds, bad durations, impossible
// thresholds, duplicate step names, undefined variables) as FILE:LINE:COL: message. Plan
// resolves a parsed scenario for one device's inventory (match, variants' variables, steps'
// `when`), and a Runner runs the plan with per-attempt timeouts, retries, continue_on_fail and
// operator prompts, reporting each step live through an event callback and returning one
// protocol.StepResult per step with its measurements, pass or fail.
//
// The language is documented for scenario authors in docs/scenarios.md; cmds/scenario-schema
// publishes it as JSON Schema for editors.
package scenario
