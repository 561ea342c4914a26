package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flashline/flashline/internal/yamldecode"
)

// Problem is one mistake in a configuration file, at its position (line and column from 1).
type Problem struct {
	File string
	Line int
	Col  int
	Msg  string
}

func (p Problem) Error() string {
	if p.File == "" {
		return fmt.Sprintf("%d:%d: %s", p.Line, p.Col, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg)
}

// Problems is every mistake found in a file, in file order. It is an error, one problem a
// line, the same FILE:LINE:COL: message form as `flashline-agent scenario lint`.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Col < ps[j].Col
	})
}

// maxNodes bounds the nodes decoded after alias expansion, so that nested anchors cannot
// expand exponentially.
const maxNodes = 200000

// decoder fills Go values from YAML nodes strictly, reporting every unknown key, duplicate
// key and wrong type at its node instead of stopping at the first (yaml.v3's KnownFields
// stops at the first and gives no column). It also remembers where each key path is, so
// that checks run on the decoded values can point back into the file.
type decoder struct {
	file     string
	problems Problems
	// keys and values map a key path ("http.listen", "rules[2].target.transport") to its
	// key node and value node.
	keys, values map[string]*yaml.Node
	nodes        int
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, keys: map[string]*yaml.Node{}, values: map[string]*yaml.Node{}}
}

func (d *decoder) at(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, max(n.Column, 1)
	}
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	durationType        = reflect.TypeFor[time.Duration]()
)

// decode fills v (addressable) from n; path is n's key path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = yamldecode.ResolveAlias(n)
	if n == nil {
		return
	}
	if d.nodes++; d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.at(n, "too many nodes after expanding aliases (more than %d)", maxNodes)
		}
		return
	}
	d.values[path] = n
	if v.Type() == durationType {
		d.duration(n, v, path)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if yamldecode.IsNull(n) {
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.at(n, "%s: %s", path, yamldecode.CleanError(err))
		}
		return
	}
	// Types that read themselves from text (netip.Addr, ...), as yaml.v3 decodes them; a
	// field of such a type added to Config later needs nothing here.
	if v.Kind() != reflect.Pointer && v.CanAddr() && v.Addr().Type().Implements(textUnmarshalerType) {
		if yamldecode.IsNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.at(n, "%s: want a scalar, got %s", path, yamldecode.Describe(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.at(n, "%s: %v", path, err)
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
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if yamldecode.IsNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.at(n, "%s: want a list, got %s", path, yamldecode.Describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || yamldecode.IsNull(n) {
			d.at(n, "%s: want a string, got %s", path, yamldecode.Describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := boolValue(n)
		if !ok {
			d.at(n, "%s: want true or false, got %s", path, yamldecode.Describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := intValue(n)
		if !ok {
			d.at(n, "%s: want an integer, got %s", path, yamldecode.Describe(n))
			return
		}
		if v.OverflowInt(i) {
			d.at(n, "%s: %s is out of range", path, n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, ok := intValue(n)
		if !ok || i < 0 {
			d.at(n, "%s: want a non-negative integer, got %s", path, yamldecode.Describe(n))
			return
		}
		if v.OverflowUint(uint64(i)) {
			d.at(n, "%s: %s is out of range", path, n.Value)
			return
		}
		v.SetUint(uint64(i))
	case reflect.Float32, reflect.Float64:
		tag := n.ShortTag()
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if n.Kind != yaml.ScalarNode || (tag != "!!int" && tag != "!!float") || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.at(n, "%s: want a finite number, got %s", path, yamldecode.Describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.at(n, "%s: %s", path, yamldecode.CleanError(err))
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.at(n, "%s: cannot be decoded (%s)", path, v.Type())
	}
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if yamldecode.IsNull(n) {
		return
	}
	if i, ok := intValue(n); ok && i == 0 {
		v.SetInt(0)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		d.at(n, "%s: want a duration such as 30s, 2m or 1h, got %s", path, yamldecode.Describe(n))
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if yamldecode.IsNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.at(n, "%s: want a mapping, got %s", path, yamldecode.Describe(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.at(n, "%s: cannot be decoded (%s)", path, v.Type())
		return
	}
	m := reflect.MakeMap(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.at(k, "%s: a key must be a plain name", path)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.at(k, "%s: duplicate key %q (first at line %d)", path, k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		ev := reflect.New(v.Type().Elem()).Elem()
		kp := join(path, k.Value)
		d.keys[kp] = k
		d.decode(val, ev, kp)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
	}
	v.Set(m)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if yamldecode.IsNull(n) {
		return // "dhcp:" with nothing after it: all defaults
	}
	if n.Kind != yaml.MappingNode {
		d.at(n, "%s: want a mapping of %s, got %s", cmpOr(path, "the file"), strings.Join(yamldecode.Keys(v.Type()), ", "), yamldecode.Describe(n))
		return
	}
	fields := yamldecode.Fields(v.Type())
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.decodeStruct(yamldecode.ResolveAlias(val), v, path)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.at(k, "%s: a key must be a plain name", cmpOr(path, "the file"))
			continue
		}
		kp := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			d.at(k, "unknown key %q%s", kp, suggestOrList(k.Value, yamldecode.Keys(v.Type())))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.at(k, "duplicate key %q (first at line %d)", kp, first.Line)
			continue
		}
		seen[k.Value] = k
		d.keys[kp] = k
		d.decode(val, v.Field(idx), kp)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func boolValue(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	if n.ShortTag() == "!!bool" {
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		return b, err == nil
	}
	// yaml.v3 decodes YAML 1.1's yes/no/on/off into a bool field; configs written for it keep
	// working.
	if n.ShortTag() == "!!str" && n.Style == 0 {
		switch strings.ToLower(n.Value) {
		case "yes", "on", "y":
			return true, true
		case "no", "off", "n":
			return false, true
		}
	}
	return false, false
}

func intValue(n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return 0, false
	}
	i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	return i, err == nil
}

func suggestOrList(s string, known []string) string {
	if sg := yamldecode.Suggest(s, known); sg != "" {
		return sg
	}
	return " (known: " + strings.Join(known, ", ") + ")"
}
