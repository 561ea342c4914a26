package scenario

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/protocol"
	"go.yaml.in/yaml/v3"
)

// Scenario is one parsed scenario file.
type Scenario struct {
	// File is the name errors are reported with.
	File string `yaml:"-" json:"-"`

	Name        string `yaml:"name" json:"name" jsonschema:"minLength=1" jsonschema_description:"Name of the scenario (usually the device variant it tests)"`
	Description string `yaml:"description" json:"description,omitempty"`
	// Match says which devices the scenario applies to; a device that does not match is not
	// tested with it. Empty: every device.
	Match *Match `yaml:"match" json:"match,omitempty" jsonschema_description:"Devices this scenario applies to (all conditions must hold); empty: every device"`
	// Vars are the values ${name} stands for in steps.
	Vars map[string]string `yaml:"vars" json:"vars,omitempty" jsonschema_description:"Variables: ${name} in a step's value is replaced by the value"`
	// Variants override Vars on the devices they match, in order (later ones win).
	Variants []Variant `yaml:"variants" json:"variants,omitempty" jsonschema_description:"Per-variant variable overrides; every matching variant applies, later ones win"`
	// Defaults apply to every step that does not say otherwise.
	Defaults Defaults `yaml:"defaults" json:"defaults,omitempty"`
	// Steps as decoded with Vars alone (before any variant applies); Plan decodes them again
	// for a device.
	Steps []Step `yaml:"-" json:"steps" jsonschema:"minItems=1"`

	stepsNode *yaml.Node
	reg       *checks.Registry
}

// Variant overrides variables on the devices it matches.
type Variant struct {
	Name  string            `yaml:"name" json:"name,omitempty"`
	Match Match             `yaml:"match" json:"match"`
	Vars  map[string]string `yaml:"vars" json:"vars,omitempty"`
}

// Defaults are step settings that apply unless a step sets its own.
type Defaults struct {
	Timeout    checks.Duration `yaml:"timeout" json:"timeout,omitempty" jsonschema_description:"Per-attempt time limit (Go syntax: 20s, 1m30s); built-in default 60s"`
	Retries    int             `yaml:"retries" json:"retries,omitempty" jsonschema:"minimum=0,maximum=100"`
	RetryDelay checks.Duration `yaml:"retry_delay" json:"retry_delay,omitempty" jsonschema_description:"Pause between attempts; built-in default 2s"`
}

// Built-in step defaults.
const (
	DefaultTimeout    = 60 * time.Second
	DefaultRetryDelay = 2 * time.Second
	maxTimeout        = 24 * time.Hour
	maxRetries        = 100
)

// Step is one test.
type Step struct {
	Name        string          `yaml:"name" json:"name" jsonschema:"minLength=1" jsonschema_description:"Unique name shown to the operator and stored with the result"`
	Description string          `yaml:"description" json:"description,omitempty"`
	Timeout     checks.Duration `yaml:"timeout" json:"timeout,omitempty" jsonschema_description:"Time limit of one attempt (Go syntax: 20s, 1m30s)"`
	Retries     int             `yaml:"retries" json:"retries,omitempty" jsonschema:"minimum=0,maximum=100" jsonschema_description:"Extra attempts after a failure"`
	RetryDelay  checks.Duration `yaml:"retry_delay" json:"retry_delay,omitempty" jsonschema_description:"Pause between attempts"`
	// ContinueOnFail runs the next steps after this one failed; the run still fails.
	ContinueOnFail bool `yaml:"continue_on_fail" json:"continue_on_fail,omitempty" jsonschema_description:"Run the following steps even if this one fails (the device still fails)"`
	// Prompt is shown to the operator, standing out, while the step runs.
	Prompt string `yaml:"prompt" json:"prompt,omitempty" jsonschema_description:"Instruction shown to the operator while the step runs"`
	// When restricts the step to matching devices; on others it is skipped.
	When *Match `yaml:"when" json:"when,omitempty" jsonschema_description:"Run only on matching devices; skipped elsewhere"`
	// QuietNetwork says the step times the network (an iperf in an exec step): a flash
	// running while testing pauses its download while the step runs. Kinds that time a link
	// (wifi.throughput) are quiet without it.
	QuietNetwork bool `yaml:"quiet_network" json:"quiet_network,omitempty" jsonschema_description:"The step times the network: a flash while testing pauses its download while it runs (wifi.throughput does by itself)"`

	// Check is the kind's name and Params its decoded, validated parameters (a pointer to
	// the kind's params struct).
	Check  string `yaml:"-" json:"-"`
	Params any    `yaml:"-" json:"-"`
	// Line and Col locate the step in its file.
	Line int `yaml:"-" json:"-"`
	Col  int `yaml:"-" json:"-"`

	// Group numbers the `parallel:` group the step is in, from 1 in file order; 0 for a step
	// on its own. GroupName is the group's optional name.
	Group     int    `yaml:"-" json:"-"`
	GroupName string `yaml:"-" json:"-"`
}

// PromptsOperator reports whether the step asks the operator to do something: a step prompt,
// or a check kind whose params say so (button.press). Two such steps never run at once.
func (s *Step) PromptsOperator() bool {
	if s.Prompt != "" {
		return true
	}
	p, ok := s.Params.(checks.OperatorPrompter)
	return ok && p.PromptsOperator()
}

// Match selects devices by their inventory. Every condition given must hold.
type Match struct {
	Product StringList `yaml:"product" json:"product,omitempty" jsonschema_description:"DMI product name glob(s); any may match (* and ?; case-insensitive)"`
	Vendor  StringList `yaml:"vendor" json:"vendor,omitempty" jsonschema_description:"DMI vendor glob(s); any may match"`
	Board   StringList `yaml:"board" json:"board,omitempty" jsonschema_description:"DMI board name glob(s); any may match"`
	// Modules must all be present, WithoutModules all absent.
	Modules        []string `yaml:"modules" json:"modules,omitempty" jsonschema:"uniqueItems=true" jsonschema_description:"Modules that must all be present: wifi, bluetooth, lte, buttons"`
	WithoutModules []string `yaml:"without_modules" json:"without_modules,omitempty" jsonschema:"uniqueItems=true" jsonschema_description:"Modules that must all be absent: wifi, bluetooth, lte, buttons"`
}

// Modules returns the optional hardware modules the inventory reports and Match can name.
func Modules() []string { return []string{"wifi", "bluetooth", "lte", "buttons"} }

// Matches reports whether inv satisfies m, and when not, why.
func (m *Match) Matches(inv protocol.Inventory) (bool, string) {
	if m == nil {
		return true, ""
	}
	anyGlob := func(field, value string, pats StringList) (bool, string) {
		if len(pats) == 0 {
			return true, ""
		}
		for _, p := range pats {
			if checks.MatchGlob(p, value) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s %q is not %s", field, value, strings.Join(pats, " or "))
	}
	if ok, why := anyGlob("product", inv.DMI.Product, m.Product); !ok {
		return false, why
	}
	if ok, why := anyGlob("vendor", inv.DMI.Vendor, m.Vendor); !ok {
		return false, why
	}
	if ok, why := anyGlob("board", inv.DMI.Board, m.Board); !ok {
		return false, why
	}
	for _, mod := range m.Modules {
		if !slices.Contains(inv.Modules, mod) {
			return false, "no " + mod + " module"
		}
	}
	for _, mod := range m.WithoutModules {
		if slices.Contains(inv.Modules, mod) {
			return false, "has a " + mod + " module"
		}
	}
	return true, ""
}

// StringList is one string or a list of strings.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(StringList, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return errors.New("want a string or a list of strings")
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return errors.New("want a string or a list of strings")
}

// AttemptTimeout is the step's per-attempt time limit after defaults.
func (s *Step) AttemptTimeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout.D()
	}
	return DefaultTimeout
}

// Delay is the pause between attempts after defaults.
func (s *Step) Delay() time.Duration {
	if s.RetryDelay > 0 {
		return s.RetryDelay.D()
	}
	return DefaultRetryDelay
}
