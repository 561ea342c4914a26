package schema

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

const (
	committed = "../../../docs/server.schema.json"
	example   = "../../../docs/server.example.yaml"
)

// TestCommittedSchemaUpToDate fails when a config type changed and the committed schema was
// not regenerated.
func TestCommittedSchemaUpToDate(t *testing.T) {
	want, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: run `go run ./cmds/server-schema` and commit it", committed)
	}
}

// TestExampleUsesSchema: the example names the schema for editors and validates against it;
// the mistakes an editor can see are rejected.
func TestExampleUsesSchema(t *testing.T) {
	b, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("server.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("server.schema.json")
	if err != nil {
		t.Fatalf("the generated schema does not compile: %v", err)
	}
	ex, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(ex), "# yaml-language-server: $schema=./server.schema.json\n") {
		t.Errorf("%s does not start with the yaml-language-server schema line", example)
	}
	if err := s.Validate(instance(t, ex)); err != nil {
		t.Errorf("the example does not validate: %v", err)
	}
	for name, y := range map[string]string{
		"misspelt key":   "http: {enabled: true, publc_url: x}",
		"bad mode":       "dhcp: {mode: half}",
		"floppy":         "rules: [{target: {transport: floppy}}]",
		"bare duration":  "jobs: {ttl: 7200}",
		"bad size":       "images: [{size: 4XB}]",
		"enabled string": "tftp: {enabled: maybe}",
	} {
		if err := s.Validate(instance(t, []byte(y))); err == nil {
			t.Errorf("%s: the schema accepts %s", name, y)
		}
	}
}

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
