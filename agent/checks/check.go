// Package checks holds the kinds of test a scenario step can run (disk.present, lte.modem,
// button.press, wifi.scan ...) and the Registry that maps a kind's name to it.
//
// # Adding a kind
//
// A kind is a Kind value, usually made with Define:
//
//	type ScanParams struct {
//		SSID         string `yaml:"ssid" json:"ssid" jsonschema_description:"Network name to find"`
//		MinSignalDBm int    `yaml:"min_signal_dbm" json:"min_signal_dbm,omitempty" jsonschema:"minimum=-120,maximum=0"`
//	}
//
//	func WifiScan(s Scanner) checks.Kind {
//		return checks.Define("wifi.scan", "Scan for an access point and check its signal.",
//			func() ScanParams { return ScanParams{MinSignalDBm: -80} }, // defaults
//			func(p ScanParams) []checks.FieldError {                      // lint-time validation
//				if p.MinSignalDBm < -120 || p.MinSignalDBm > 0 {
//					return []checks.FieldError{{Field: "min_signal_dbm", Message: "must be in [-120, 0] dBm"}}
//				}
//				return nil
//			},
//			func(p ScanParams) checks.Check { return &scanCheck{p: p, s: s} })
//	}
//
// The params type is a struct whose `yaml` tags name the keys a scenario writes under the
// kind's name; the scenario package decodes the step's mapping into it strictly (unknown keys
// and wrong types are errors with FILE:LINE:COL), then calls Validate. A FieldError names the
// YAML key (dotted for nested structs, "" for the whole mapping), so that the scenario package
// can point the error at the key's position in the file: validation stays position-aware
// without the kind knowing about YAML. `json`, `jsonschema` (minimum, maximum, enum,
// pattern, default) and `jsonschema_description` tags feed the JSON Schema that
// cmds/scenario-schema generates for editors; keep descriptions in jsonschema_description, as
// a comma inside jsonschema:"description=..." splits it. After changing a params type, run
// `go run ./cmds/scenario-schema` (a test fails until the committed schema matches). Sizes
// are Size ("16GB", "512MiB", 1024) and durations Duration ("20s").
//
// A params type may also implement MinTimeouter (value or pointer receiver) when its values
// imply a least attempt timeout; lint then reports a step whose timeout is shorter.
//
// A Check's Run returns an Outcome: Pass, a one-line Reason (why it failed, or what it saw
// when it passed) and the Measurements it made, which are recorded pass or fail. Run returns a
// non-nil error only when the check could not be carried out at all (no such device node,
// permission denied): the step is then reported as an error rather than a device fault. Run
// must honour ctx: the runner cancels it at the step's timeout.
//
// Hardware access belongs to the kind, not to Env: a kind's constructor takes small interfaces
// (a link reader, a modem prober, a key source) with a kernel-backed implementation for the
// device and a fake for tests. Env carries only what every check may share: a fresh inventory,
// the operator console and a logger.
//
// # The registry
//
// Default lists every kind with its kernel-backed implementation. Radio kinds (wifi.*,
// bluetooth.*) are listed by radioKinds in radio.go, which the radio probes' owner maintains.
// Tests build their own Registry with New and fakes. A Registry is immutable after New.
package checks

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/flashline/flashline/protocol"
)

// Check is one configured test, ready to run.
type Check interface {
	Run(ctx context.Context, env *Env) (Outcome, error)
}

// CheckFunc adapts a function to Check.
type CheckFunc func(ctx context.Context, env *Env) (Outcome, error)

// Run calls f.
func (f CheckFunc) Run(ctx context.Context, env *Env) (Outcome, error) { return f(ctx, env) }

// Outcome is what a check found.
type Outcome struct {
	Pass bool
	// Reason is one line: why the check failed ("CSQ 7 < 10"), or what it saw on success.
	Reason string
	// Measurements are recorded with the step's result whether it passed or not.
	Measurements []protocol.Measurement
}

// Passf returns a passing Outcome with a formatted reason.
func Passf(ms []protocol.Measurement, format string, args ...any) Outcome {
	return Outcome{Pass: true, Reason: fmt.Sprintf(format, args...), Measurements: ms}
}

// Failf returns a failing Outcome with a formatted reason.
func Failf(ms []protocol.Measurement, format string, args ...any) Outcome {
	return Outcome{Pass: false, Reason: fmt.Sprintf(format, args...), Measurements: ms}
}

// Env is what every check may use while it runs.
type Env struct {
	// Inventory reads the hardware inventory afresh (USB devices may enumerate late, so a
	// retried step must not see a stale one).
	Inventory InventorySource
	// Operator is the console the line operator watches; never nil inside Run (the runner
	// puts a silent one in when the caller gave none).
	Operator Operator
	// Log is for diagnostics; never nil inside Run.
	Log *slog.Logger
	// Step is the name of the running step and Attempt its attempt number, from 1.
	Step    string
	Attempt int
}

// InventorySource reads the hardware inventory.
type InventorySource interface {
	Inventory(ctx context.Context) (protocol.Inventory, error)
}

// InventoryFunc adapts a function to InventorySource.
type InventoryFunc func(ctx context.Context) (protocol.Inventory, error)

// Inventory calls f.
func (f InventoryFunc) Inventory(ctx context.Context) (protocol.Inventory, error) { return f(ctx) }

// StaticInventory is an InventorySource that always returns the same inventory (tests, and
// hosts where reading it twice makes no difference).
func StaticInventory(inv protocol.Inventory) InventorySource {
	return InventoryFunc(func(context.Context) (protocol.Inventory, error) { return inv, nil })
}

// Operator is the console the line operator watches.
type Operator interface {
	// Prompt shows an instruction that stands out ("Press POWER") until the step ends.
	Prompt(step, message string)
}

// OperatorPrompter is implemented by params types whose check asks the operator to act
// (press a button); the scenario runner never runs two such steps at once, so that the
// operator sees one instruction at a time.
type OperatorPrompter interface {
	PromptsOperator() bool
}

// OperatorFunc adapts a function to Operator (e.g. one that reports the prompt to the
// line server as a protocol.EventPrompt).
type OperatorFunc func(step, message string)

// Prompt calls f.
func (f OperatorFunc) Prompt(step, message string) { f(step, message) }

// NopOperator shows nothing.
type NopOperator struct{}

// Prompt does nothing.
func (NopOperator) Prompt(string, string) {}

// FieldError is a problem with one parameter of a step.
type FieldError struct {
	// Field is the YAML key ("min_csq"), dotted for nested mappings ("limits.min"), or ""
	// for the params mapping as a whole.
	Field   string
	Message string
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// MinTimeouter is implemented by params types whose values imply a least attempt timeout
// (a throughput test that pushes data for 10s cannot pass in a 5s step). Lint reports a
// step timeout below it.
type MinTimeouter interface {
	MinTimeout() time.Duration
}

// Kind is one kind of check.
type Kind interface {
	// Name is the key a scenario step uses, e.g. "disk.present".
	Name() string
	// Doc is one or two sentences for the schema and the docs.
	Doc() string
	// NewParams returns a pointer to a new params struct holding the kind's defaults; the
	// scenario decoder fills it from the step's mapping.
	NewParams() any
	// Validate reports impossible or malformed params (as returned by NewParams and filled).
	Validate(params any) []FieldError
	// New returns the check for params that passed Validate.
	New(params any) (Check, error)
}

// Define makes a Kind from functions over its params type P (a struct). defaults may be nil
// (the zero P), validate may be nil (nothing to check).
func Define[P any](name, doc string, defaults func() P, validate func(P) []FieldError, build func(P) Check) Kind {
	return &defined[P]{name: name, doc: doc, defaults: defaults, validate: validate, build: build}
}

type defined[P any] struct {
	name, doc string
	defaults  func() P
	validate  func(P) []FieldError
	build     func(P) Check
}

func (d *defined[P]) Name() string { return d.name }
func (d *defined[P]) Doc() string  { return d.doc }

func (d *defined[P]) NewParams() any {
	p := new(P)
	if d.defaults != nil {
		*p = d.defaults()
	}
	return p
}

func (d *defined[P]) params(v any) (P, error) {
	switch p := v.(type) {
	case *P:
		return *p, nil
	case P:
		return p, nil
	}
	var zero P
	return zero, fmt.Errorf("check %s: params of type %T, want %v", d.name, v, reflect.TypeFor[*P]())
}

func (d *defined[P]) Validate(v any) []FieldError {
	p, err := d.params(v)
	if err != nil {
		return []FieldError{{Message: err.Error()}}
	}
	if d.validate == nil {
		return nil
	}
	return d.validate(p)
}

func (d *defined[P]) New(v any) (Check, error) {
	p, err := d.params(v)
	if err != nil {
		return nil, err
	}
	return d.build(p), nil
}
