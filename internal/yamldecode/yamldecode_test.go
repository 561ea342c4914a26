package yamldecode

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSuggest(t *testing.T) {
	known := []string{"disk.present", "wifi.scan", "exec"}
	for _, tt := range []struct{ in, want string }{
		{"disk.presnt", ` (did you mean "disk.present"?)`},
		{"WIFI.SCAN", ` (did you mean "wifi.scan"?)`},
		{"bluetooth", ""},
	} {
		if got := Suggest(tt.in, known); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFields(t *testing.T) {
	type s struct {
		A      int `yaml:"a_b,omitempty"`
		Plain  int
		Hidden int `yaml:"-"`
		lower  int
	}
	_ = s{}.lower
	typ := reflect.TypeOf(s{})
	if got := Keys(typ); !slices.Equal(got, []string{"a_b", "plain"}) {
		t.Fatalf("Keys = %q", got)
	}
	if got := Fields(typ); !reflect.DeepEqual(got, map[string]int{"a_b": 0, "plain": 1}) {
		t.Fatalf("Fields = %v", got)
	}
}

func TestDescribe(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("[{a: 1}, [], ~, 3, 1.5, true, hello]"), &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range doc.Content[0].Content {
		got = append(got, Describe(n))
	}
	want := []string{"a mapping", "a list", "nothing", "the integer 3", "the number 1.5", "true", `"hello"`}
	if !slices.Equal(got, want) {
		t.Fatalf("Describe = %q, want %q", got, want)
	}
	if !IsNull(doc.Content[0].Content[2]) || IsNull(doc.Content[0].Content[3]) {
		t.Error("IsNull")
	}
}

func TestCleanError(t *testing.T) {
	if got := CleanError(errors.New("yaml: unmarshal errors:\n  line 3: cannot unmarshal")); got != "cannot unmarshal" {
		t.Fatalf("CleanError = %q", got)
	}
}

func TestResolveAlias(t *testing.T) {
	loop := &yaml.Node{Kind: yaml.AliasNode}
	loop.Alias = loop
	if ResolveAlias(loop) != nil {
		t.Fatal("a loop of aliases resolved")
	}
	v := &yaml.Node{Kind: yaml.ScalarNode, Value: "x"}
	if ResolveAlias(&yaml.Node{Kind: yaml.AliasNode, Alias: v}) != v {
		t.Fatal("alias not followed")
	}
}
