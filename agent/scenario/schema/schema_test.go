package schema

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/flashline/flashline/agent/checks"
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
