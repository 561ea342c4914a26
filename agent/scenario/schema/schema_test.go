package schema

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/flashline/flashline/agent/checks"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

const committed = "../../../scenarios/scenario.schema.json"

// TestCommittedSchemaUpToDate fails when a Go type or a check kind changed and the committed
// schema was not regenerated.
func TestCommittedSchemaUpToDate(t *testing.T) {
	want, err := Generate(checks.Default())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: run `go run ./cmds/scenario-schema` and commit it", committed)
	}
}

func TestSchemaShape(t *testing.T) {
	b, err := Generate(checks.Default())
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Defs map[string]struct {
			Properties           map[string]json.RawMessage `json:"properties"`
			Required             []string                   `json:"required"`
			AdditionalProperties *bool                      `json:"additionalProperties"`
			OneOf                []struct {
				Required []string `json:"required"`
			} `json:"oneOf"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	step := s.Defs["Step"]
	for _, k := range checks.Default().Names() {
		if _, ok := step.Properties[k]; !ok {
			t.Errorf("step schema lacks kind %s", k)
		}
	}
	if len(step.OneOf) != len(checks.Default().Names()) || step.AdditionalProperties == nil || *step.AdditionalProperties {
		t.Errorf("step must allow exactly one kind and no other keys: %+v", step)
	}
	sc := s.Defs["Scenario"]
	if _, ok := sc.Properties["steps"]; !ok || len(sc.Required) != 2 {
		t.Errorf("scenario schema: %+v", sc)
	}
}

// compile compiles the generated schema with a draft 2020-12 validator.
func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := Generate(checks.Default())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("scenario.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("scenario.schema.json")
	if err != nil {
		t.Fatalf("the generated schema does not compile: %v", err)
	}
	return s
}

// instance turns YAML into the JSON value an editor's language server validates.
func instance(t *testing.T, y []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestExamplesValidate checks that editors accept every shipped scenario, and reject the
// mistakes the schema can see.
func TestExamplesValidate(t *testing.T) {
	s := compile(t)
	files, _ := filepath.Glob("../../../scenarios/*.yaml")
	if len(files) < 3 {
		t.Fatalf("examples: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(instance(t, b)); err != nil {
			t.Errorf("%s does not validate against the schema: %v", f, err)
		}
	}
	bad := map[string]string{
		"unknown step key":  "name: x\nsteps:\n  - name: a\n    cpu: {min_cores: 1}\n    timeot: 2s\n",
		"two kinds":         "name: x\nsteps:\n  - name: a\n    cpu: {min_cores: 1}\n    memory.min: {min: 1GB}\n",
		"no kind":           "name: x\nsteps:\n  - name: a\n",
		"csq out of range":  "name: x\nsteps:\n  - name: a\n    lte.modem: {min_csq: 40}\n",
		"bad size":          "name: x\nsteps:\n  - name: a\n    memory.min: {min: 4XB}\n",
		"bare duration":     "name: x\nsteps:\n  - name: a\n    cpu: {cores: 1}\n    timeout: 20\n",
		"unknown param":     "name: x\nsteps:\n  - name: a\n    disk.present: {min_sise: 1GB}\n",
		"missing steps":     "name: x\n",
		"bad vid:pid":       "name: x\nsteps:\n  - name: a\n    usb.present: {id: 2c7c-0125}\n",
		"unknown top level": "name: x\nstep: []\nsteps:\n  - name: a\n    cpu: {cores: 1}\n",
		"empty group":       "name: x\nsteps:\n  - parallel: []\n",
		"nested group":      "name: x\nsteps:\n  - parallel:\n      - parallel:\n          - {name: a, cpu: {cores: 1}}\n",
		"group with a kind": "name: x\nsteps:\n  - parallel:\n      - {name: a, cpu: {cores: 1}}\n    cpu: {cores: 1}\n",
	}
	for name, y := range bad {
		if err := s.Validate(instance(t, []byte(y))); err == nil {
			t.Errorf("%s: the schema accepts\n%s", name, y)
		}
	}
	good := map[string]string{
		"variable in a typed field": "name: x\nvars: {csq: \"10\"}\nsteps:\n  - name: a\n    lte.modem: {min_csq: \"${csq}\"}\n",
		"kind with no params":       "name: x\nsteps:\n  - name: a\n    lte.modem:\n",
		"size as integer":           "name: x\nsteps:\n  - name: a\n    memory.min: {min: 1073741824}\n",
		"parallel group":            "name: x\nsteps:\n  - name: radios\n    parallel:\n      - {name: a, cpu: {cores: 1}}\n      - {name: b, memory.min: {min: 1GB}}\n",
		"product list or string":    "name: x\nmatch: {product: GM*}\nvariants:\n  - match: {product: [A, B]}\nsteps:\n  - name: a\n    cpu: {cores: 1}\n",
	}
	for name, y := range good {
		if err := s.Validate(instance(t, []byte(y))); err != nil {
			t.Errorf("%s: the schema rejects\n%s\n%v", name, y, err)
		}
	}
}
