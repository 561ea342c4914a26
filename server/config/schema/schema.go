// Package schema generates the JSON Schema of flashline-server's configuration file from the Go
// types of server/config, so that editors running the YAML language server complete and check
// server.yaml as it is typed. The server never reads the schema: `flashline-server check` is
// the authority and is stricter (files, ports, scenario lint).
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/invopop/jsonschema"

	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
)

// ID is the schema's $id.
const ID = "https://flashline.dev/schemas/server.schema.json"

// enums are the closed sets of values some keys take: definition name, then property.
var enums = map[string]map[string][]any{
	"DHCP":     {"mode": {"proxy", "full"}},
	"Rule":     {"after": {"reboot", "poweroff", "kexec", "halt", "none"}},
	"PXELinux": {"unknown_devices": {"provision", "localboot"}},
	"Target":   {"transport": toAny(protocol.Transports())},
}

// Generate returns the schema, indented, ending in a newline.
func Generate() ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag: "yaml",
		// Every key is optional in the file; check says which ones a part needs.
		RequiredFromJSONSchemaTags: true,
		Mapper:                     mapType,
	}
	root := r.Reflect(&config.Config{})
	root.ID = ID
	root.Title = "flashline-server configuration"
	root.Description = "One file for the whole line server (DHCP, TFTP, HTTP, results). See docs/server.md and docs/server.example.yaml; `flashline-server check -config FILE` checks it against this host."
	for def, props := range enums {
		d := root.Definitions[def]
		if d == nil || d.Properties == nil {
			return nil, fmt.Errorf("schema: no definition %s", def)
		}
		for prop, values := range props {
			p, ok := d.Properties.Get(prop)
			if !ok {
				return nil, fmt.Errorf("schema: %s has no property %s", def, prop)
			}
			p.Enum = values
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return buf.Bytes(), nil
}

// mapType gives the schema of types whose YAML form is not their Go shape.
func mapType(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return &jsonschema.Schema{Type: "string", Pattern: `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, Description: "Go duration: 30s, 2m, 1h30m"}
	case reflect.TypeFor[config.Rate]():
		return &jsonschema.Schema{
			Description: "Bytes per second as an integer (0: no cap), or a number with a unit: 100Mbit/s, 1Gbit/s, 12MB/s, 10MiB/s",
			OneOf: []*jsonschema.Schema{
				{Type: "integer", Minimum: json.Number("0")},
				{Type: "string", Pattern: `^[0-9.]+ *([kKmMgGtT]?(i?[bB])|[kKmMgG]?(bit|bps))?(/s)?$`},
			},
		}
	case reflect.TypeFor[config.Bytes]():
		return &jsonschema.Schema{
			Description: "Bytes as an integer, or a number with a unit: kB MB GB TB (powers of 1000) or KiB MiB GiB TiB (powers of 1024)",
			OneOf: []*jsonschema.Schema{
				{Type: "integer", Minimum: json.Number("0")},
				{Type: "string", Pattern: `^[0-9.]+ *([kKmMgGtT](i?[bB])?|[bB])?$`},
			},
		}
	}
	return nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
