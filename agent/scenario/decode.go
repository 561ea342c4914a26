package scenario

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flashline/flashline/internal/yamldecode"
)

// decoder fills Go values from YAML nodes strictly (unknown keys, duplicate keys and wrong
// types are errors) and reports every problem at its node's position instead of stopping at
// the first, which yaml.v3's own decoding cannot do.
type decoder struct {
	e *errs
	// extra names keys a struct type accepts that are decoded elsewhere (a scenario's
	// steps), so that "unknown key" suggestions include them.
	extra map[reflect.Type][]string
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decode fills v (addressable) from n.
func (d *decoder) decode(n *yaml.Node, v reflect.Value) {
	n = yamldecode.ResolveAlias(n)
	if n == nil {
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if yamldecode.IsNull(n) {
			d.e.at(n, "missing value")
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.e.at(n, "%s", yamldecode.CleanError(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if yamldecode.IsNull(n) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem())
	case reflect.Struct:
		d.decodeStruct(n, v)
	case reflect.Slice:
		if yamldecode.IsNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.e.at(n, "want a list, got %s", yamldecode.Describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if yamldecode.IsNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.e.at(n, "want a mapping, got %s", yamldecode.Describe(n))
			return
		}
		if v.Type().Key().Kind() != reflect.String {
			panic("scenario: only string-keyed maps are supported")
		}
		m := reflect.MakeMap(v.Type())
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.e.at(k, "a key must be a plain name")
				continue
			}
			if first, dup := seen[k.Value]; dup {
				d.e.at(k, "duplicate key %q (first at line %d)", k.Value, first.Line)
				continue
			}
			seen[k.Value] = k
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, ev)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || yamldecode.IsNull(n) {
			d.e.at(n, "want a string, got %s", yamldecode.Describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.e.at(n, "want true or false, got %s", yamldecode.Describe(n))
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := intValue(n)
		if !ok {
			d.e.at(n, "want an integer, got %s", yamldecode.Describe(n))
			return
		}
		if v.OverflowInt(i) {
			d.e.at(n, "%s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, ok := intValue(n)
		if !ok || i < 0 {
			d.e.at(n, "want a non-negative integer, got %s", yamldecode.Describe(n))
			return
		}
		if v.OverflowUint(uint64(i)) {
			d.e.at(n, "%s is out of range", n.Value)
			return
		}
		v.SetUint(uint64(i))
	case reflect.Float32, reflect.Float64:
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") {
			d.e.at(n, "want a number, got %s", yamldecode.Describe(n))
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.e.at(n, "want a finite number, got %s", yamldecode.Describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.e.at(n, "%s", yamldecode.CleanError(err))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		panic(fmt.Sprintf("scenario: cannot decode into %s", v.Type()))
	}
}

func intValue(n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return 0, false
	}
	i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	return i, err == nil
}

// decodeStruct fills a struct from a mapping by the fields' yaml tags.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value) {
	if yamldecode.IsNull(n) {
		return // "lte.modem:" with nothing after it: all defaults
	}
	if n.Kind != yaml.MappingNode {
		d.e.at(n, "want a mapping of %s, got %s", strings.Join(yamldecode.Keys(v.Type()), ", "), yamldecode.Describe(n))
		return
	}
	fields := yamldecode.Fields(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.decodeStruct(val, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.e.at(k, "a key must be a plain name")
			continue
		}
		idx, ok := fields[k.Value]
		if !ok {
			d.e.at(k, "unknown key %q%s", k.Value, suggestOrList(k.Value, append(yamldecode.Keys(v.Type()), d.extra[v.Type()]...)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.e.at(k, "duplicate key %q (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		d.decode(val, v.Field(idx))
	}
}

func suggestOrList(s string, known []string) string {
	if sg := yamldecode.Suggest(s, known); sg != "" {
		return sg
	}
	if len(known) == 0 {
		return " (this takes no parameters)"
	}
	return " (known: " + strings.Join(known, ", ") + ")"
}
