// Package schema generates the JSON Schema of scenario files from the scenario package's Go
// types and the params types of every check kind in a registry, so that editors running the
// YAML language server complete and check scenarios as they are typed. The agent itself
// never imports this package: the schema is for authors, the agent's own parser is stricter.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/invopop/jsonschema"
	orderedmap "github.com/pb33f/ordered-map/v2"
)

// ID is the schema's $id.
const ID = "https://flashline.dev/schemas/scenario.schema.json"

// varPattern matches a value that is exactly one variable reference, which the parser types
// after substitution: typed fields accept it as well.
const varPattern = `^\$\{[A-Za-z_][A-Za-z0-9_-]*\}$`

// Generate returns the JSON Schema of scenarios using the kinds of reg, indented, ending in
// a newline.
func Generate(reg *checks.Registry) ([]byte, error) {
	r := reflector()
	root := r.Reflect(&scenario.Scenario{})
	root.ID = ID
	root.Title = "Flashline scenario"
	root.Description = "Functional tests of one device variant, run by flashline-agent before flashing. See docs/scenarios.md."

	step, err := stepSchema(reg)
	if err != nil {
		return nil, err
	}
	if root.Definitions == nil {
		root.Definitions = jsonschema.Definitions{}
	}
	root.Definitions["Step"] = step
	root.Definitions["ParallelGroup"] = groupSchema()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return buf.Bytes(), nil
}

func reflector() *jsonschema.Reflector {
	return &jsonschema.Reflector{
		// Field names come from the json tags, which spell the same keys as the yaml ones.
		Mapper: mapType,
		// Our structs carry their own descriptions in tags.
		RequiredFromJSONSchemaTags: false,
	}
}

// mapType gives the schema of types whose YAML form is not their Go shape.
func mapType(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[checks.Size]():
		return &jsonschema.Schema{
			Description: "Bytes as an integer, or a number with a unit: kB MB GB TB (powers of 1000) or KiB MiB GiB TiB (powers of 1024)",
			OneOf: []*jsonschema.Schema{
				{Type: "integer", Minimum: json.Number("0")},
				{Type: "string", Pattern: checks.SizePattern},
				{Type: "string", Pattern: varPattern},
			},
		}
	case reflect.TypeFor[checks.Duration]():
		return &jsonschema.Schema{
			Description: "Go duration: 500ms, 20s, 1m30s",
			OneOf: []*jsonschema.Schema{
				{Type: "string", Pattern: checks.DurationPattern},
				{Type: "string", Pattern: varPattern},
			},
		}
	case reflect.TypeFor[scenario.StringList]():
		return &jsonschema.Schema{OneOf: []*jsonschema.Schema{
			{Type: "string"},
			{Type: "array", Items: &jsonschema.Schema{Type: "string"}},
		}}
	case reflect.TypeFor[map[string]string]():
		// Variable values may be written as numbers or booleans; they are kept as text.
		return &jsonschema.Schema{Type: "object", AdditionalProperties: &jsonschema.Schema{
			OneOf: []*jsonschema.Schema{{Type: "string"}, {Type: "number"}, {Type: "boolean"}},
		}}
	case reflect.TypeFor[[]scenario.Step]():
		return &jsonschema.Schema{Type: "array", MinItems: ptr(uint64(1)), Items: &jsonschema.Schema{OneOf: []*jsonschema.Schema{
			{Ref: "#/$defs/Step"}, {Ref: "#/$defs/ParallelGroup"},
		}}}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// stepSchema is a step: the common keys, plus exactly one check kind key whose value is the
// kind's params mapping (or nothing, for all defaults).
func stepSchema(reg *checks.Registry) (*jsonschema.Schema, error) {
	r := reflector()
	r.DoNotReference = true
	r.ExpandedStruct = true
	common := r.Reflect(&scenario.Step{})
	props := orderedmap.New[string, *jsonschema.Schema]()
	for p := common.Properties.Oldest(); p != nil; p = p.Next() {
		props.Set(p.Key, p.Value)
	}
	var oneOf []*jsonschema.Schema
	for _, k := range reg.Kinds() {
		ps := r.Reflect(k.NewParams())
		ps.Version = ""
		ps.ID = ""
		allowVariables(ps)
		props.Set(k.Name(), &jsonschema.Schema{
			Description: k.Doc(),
			OneOf:       []*jsonschema.Schema{ps, {Type: "null"}},
		})
		oneOf = append(oneOf, &jsonschema.Schema{Required: []string{k.Name()}})
	}
	return &jsonschema.Schema{
		Type:                 "object",
		Description:          "One test: a name, exactly one check kind with its parameters, and optional timeout, retries, continue_on_fail, prompt and when.",
		Properties:           props,
		Required:             []string{"name"},
		AdditionalProperties: jsonschema.FalseSchema,
		OneOf:                oneOf,
	}, nil
}

// groupSchema is a `parallel:` group: an optional name and the steps that run at once (which
// do not nest).
func groupSchema() *jsonschema.Schema {
	props := orderedmap.New[string, *jsonschema.Schema]()
	props.Set("name", &jsonschema.Schema{Type: "string", Description: "Name of the group, for the reader"})
	props.Set("parallel", &jsonschema.Schema{
		Type:        "array",
		Description: "Steps run at once, each with its own timeout and retries; steps that prompt the operator run one after another. The first failure cancels the rest of the group.",
		MinItems:    ptr(uint64(1)),
		Items:       &jsonschema.Schema{Ref: "#/$defs/Step"},
	})
	return &jsonschema.Schema{
		Type:                 "object",
		Description:          "Steps that run at the same time. See docs/scenarios.md.",
		Properties:           props,
		Required:             []string{"parallel"},
		AdditionalProperties: jsonschema.FalseSchema,
	}
}

// allowVariables lets every typed scalar in s (numbers, booleans, strings with a pattern or
// an enum) also be written as one ${variable}.
func allowVariables(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	typed := s.Type == "integer" || s.Type == "number" || s.Type == "boolean" ||
		(s.Type == "string" && (s.Pattern != "" || len(s.Enum) > 0))
	if typed {
		orig := *s
		orig.Description = ""
		*s = jsonschema.Schema{
			Description: s.Description,
			AnyOf:       []*jsonschema.Schema{&orig, {Type: "string", Pattern: varPattern}},
		}
		return
	}
	if s.Properties != nil {
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			allowVariables(p.Value)
		}
	}
	allowVariables(s.Items)
}
