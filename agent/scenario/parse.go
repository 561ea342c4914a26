package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/flashline/flashline/agent/checks"
	"go.yaml.in/yaml/v3"

	"github.com/flashline/flashline/internal/yamldecode"
)

// MaxFileSize bounds a scenario file; scenarios are a few KiB.
const MaxFileSize = 1 << 20

// Parse reads a scenario from data, naming file in errors, with the check kinds of reg. On
// any problem it returns an ErrorList holding every problem found (and a nil Scenario).
func Parse(file string, data []byte, reg *checks.Registry) (*Scenario, error) {
	e := &errs{file: file}
	s := parse(e, data, reg)
	if len(e.list) > 0 {
		return nil, e.list.sortDedup()
	}
	return s, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func parse(e *errs, data []byte, reg *checks.Registry) *Scenario {
	if len(data) > MaxFileSize {
		e.at(nil, "file is larger than %d bytes", MaxFileSize)
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		// yaml.v3 gives syntax errors a line but no column.
		line := 1
		msg := yamldecode.CleanError(err)
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		e.list = append(e.list, Error{File: e.file, Line: line, Col: 1, Msg: "YAML syntax: " + msg})
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		e.at(nil, "empty file: a scenario needs a name and steps")
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		e.at(&next, "a second YAML document: a file holds one scenario")
	}
	root := yamldecode.ResolveAlias(doc.Content[0])
	if root == nil || root.Kind != yaml.MappingNode {
		e.at(doc.Content[0], "a scenario is a mapping with name, steps ... at the top level")
		return nil
	}
	s := &Scenario{File: e.file, reg: reg}
	// Decode everything but steps with the strict decoder; steps need the registry.
	header := &yaml.Node{Kind: yaml.MappingNode, Line: root.Line, Column: root.Column}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "steps" {
			if s.stepsNode != nil {
				e.at(k, "duplicate key \"steps\"")
				continue
			}
			s.stepsNode = root.Content[i+1]
			continue
		}
		header.Content = append(header.Content, root.Content[i], root.Content[i+1])
	}
	d := decoder{e: e, extra: map[reflect.Type][]string{reflect.TypeFor[Scenario](): {"steps"}}}
	d.decode(header, reflect.ValueOf(s).Elem())
	if strings.TrimSpace(s.Name) == "" {
		e.at(root, "missing name: every scenario needs one")
	}
	checkMatch(e, root, "match", s.Match)
	if s.Defaults.Retries < 0 || s.Defaults.Retries > maxRetries {
		e.at(keyNode(root, "defaults"), "defaults.retries must be in [0, %d]", maxRetries)
	}
	if s.Defaults.Timeout.D() > maxTimeout {
		e.at(keyNode(root, "defaults"), "defaults.timeout %s is longer than %s", s.Defaults.Timeout, maxTimeout)
	}
	for name := range s.Vars {
		if !varNameRE.MatchString(name) {
			e.at(keyNode(root, "vars"), "variable name %q: use letters, digits, _ and -", name)
		}
	}
	variantsNode := valueNode(root, "variants")
	for i, v := range s.Variants {
		var vn *yaml.Node
		if variantsNode != nil && i < len(variantsNode.Content) {
			vn = variantsNode.Content[i]
		}
		checkMatch(e, vn, "match", &v.Match)
		for _, name := range slices.Sorted(maps.Keys(v.Vars)) {
			if _, ok := s.Vars[name]; !ok {
				e.at(keyNode(valueNode(vn, "vars"), name), "variant sets %q, which is not declared under vars%s", name, yamldecode.Suggest(name, slices.Collect(maps.Keys(s.Vars))))
			}
		}
	}
	if s.stepsNode == nil {
		e.at(root, "missing steps: a scenario needs at least one")
		return s
	}
	// Decode the steps with the scenario's own vars, then again under every variant: a
	// variable that makes a step invalid only on some variant is still found by lint.
	before := len(e.list)
	s.Steps = decodeSteps(e, s.stepsNode, reg, s.Vars, s.Defaults)
	base := map[Error]bool{}
	for _, err := range e.list[before:] {
		base[err] = true
	}
	for i, v := range s.Variants {
		ve := &errs{file: e.file}
		decodeSteps(ve, s.stepsNode, reg, mergeVars(s.Vars, v.Vars), s.Defaults)
		name := v.Name
		if name == "" {
			name = "#" + strconv.Itoa(i+1)
		}
		for _, err := range ve.list {
			if !base[err] {
				err.Msg += fmt.Sprintf(" (with variant %s)", name)
				e.list = append(e.list, err)
			}
		}
	}
	return s
}

var varNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func mergeVars(base, over map[string]string) map[string]string {
	m := maps.Clone(base)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, over)
	return m
}

func checkMatch(e *errs, parent *yaml.Node, key string, m *Match) {
	if m == nil {
		return
	}
	mn := valueNode(parent, key)
	for _, list := range []struct {
		key  string
		mods []string
	}{{"modules", m.Modules}, {"without_modules", m.WithoutModules}} {
		ln := valueNode(mn, list.key)
		for i, mod := range list.mods {
			if !slices.Contains(Modules(), mod) {
				var at *yaml.Node = ln
				if ln != nil && i < len(ln.Content) {
					at = ln.Content[i]
				}
				e.at(at, "unknown module %q (known: %s)%s", mod, strings.Join(Modules(), ", "), yamldecode.Suggest(mod, Modules()))
			}
		}
	}
	for _, mod := range m.Modules {
		if slices.Contains(m.WithoutModules, mod) {
			e.at(mn, "module %q is both required and excluded: nothing can match", mod)
		}
	}
}

// stepKeys are the keys every step may have besides its one check kind.
var stepKeys = yamldecode.Keys(reflect.TypeFor[Step]())

func decodeSteps(e *errs, n *yaml.Node, reg *checks.Registry, vars map[string]string, def Defaults) []Step {
	n = yamldecode.ResolveAlias(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		e.at(n, "steps must be a list of steps")
		return nil
	}
	if len(n.Content) == 0 {
		e.at(n, "steps is empty: a scenario needs at least one")
		return nil
	}
	var steps []Step
	names := map[string]*yaml.Node{}
	addName := func(st Step, sn *yaml.Node) {
		key := strings.ToLower(strings.TrimSpace(st.Name))
		if key == "" {
			return
		}
		nameNode := valueNode(sn, "name")
		if first, dup := names[key]; dup {
			e.at(nameNode, "duplicate step name %q (first at line %d)", st.Name, first.Line)
		} else {
			names[key] = nameNode
		}
	}
	group := 0
	for _, sn := range n.Content {
		if gn := yamldecode.ResolveAlias(sn); gn != nil && hasKey(gn, "parallel") {
			group++
			for _, m := range decodeGroup(e, gn, reg, vars, def, group) {
				addName(m.step, m.node)
				steps = append(steps, m.step)
			}
			continue
		}
		st, ok := decodeStep(e, sn, reg, vars, def)
		if !ok {
			continue
		}
		addName(st, sn)
		steps = append(steps, st)
	}
	return steps
}

// groupKeys are the keys a parallel group may have.
var groupKeys = []string{"name", "parallel"}

type groupMember struct {
	step Step
	node *yaml.Node
}

// decodeGroup decodes a `parallel:` group, the steps of which run at once (see Runner.Run).
// Groups do not nest: one level is what a line needs (radios while the operator presses
// buttons), and nested groups would make the failure and prompt rules hard to read.
func decodeGroup(e *errs, gn *yaml.Node, reg *checks.Registry, vars map[string]string, def Defaults, group int) []groupMember {
	gname := ""
	for i := 0; i+1 < len(gn.Content); i += 2 {
		k, v := gn.Content[i], gn.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			e.at(k, "a key must be a plain name")
		case k.Value == "name":
			if v = yamldecode.ResolveAlias(v); v == nil || v.Kind != yaml.ScalarNode || yamldecode.IsNull(v) {
				e.at(v, "want a string, got %s", describeOrNothing(v))
			} else {
				gname = v.Value
			}
		case k.Value == "parallel":
		default:
			if _, ok := reg.Lookup(k.Value); ok {
				e.at(k, "a parallel group runs the steps listed under it: put %q in a step of its own there", k.Value)
			} else {
				e.at(k, "unknown key %q in a parallel group%s", k.Value, suggestOrList(k.Value, groupKeys))
			}
		}
	}
	list := valueNode(gn, "parallel")
	if list == nil || list.Kind != yaml.SequenceNode {
		e.at(keyNode(gn, "parallel"), "parallel must be a list of steps, got %s", describeOrNothing(list))
		return nil
	}
	if len(list.Content) == 0 {
		e.at(list, "parallel group is empty: list the steps to run at once")
		return nil
	}
	var out []groupMember
	for _, sn := range list.Content {
		if r := yamldecode.ResolveAlias(sn); r != nil && hasKey(r, "parallel") {
			e.at(keyNode(r, "parallel"), "parallel groups do not nest: list the steps of the inner group in the outer one")
			continue
		}
		st, ok := decodeStep(e, sn, reg, vars, def)
		if !ok {
			continue
		}
		st.Group, st.GroupName = group, gname
		out = append(out, groupMember{st, yamldecode.ResolveAlias(sn)})
	}
	return out
}

func describeOrNothing(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	return yamldecode.Describe(n)
}

func decodeStep(e *errs, sn *yaml.Node, reg *checks.Registry, vars map[string]string, def Defaults) (Step, bool) {
	sn = yamldecode.ResolveAlias(sn)
	if sn == nil || sn.Kind != yaml.MappingNode {
		e.at(sn, "a step is a mapping with name, a check kind and its parameters, got %s", yamldecode.Describe(sn))
		return Step{}, false
	}
	sn = substitute(e, sn, vars)
	st := Step{Line: sn.Line, Col: sn.Column}
	common := &yaml.Node{Kind: yaml.MappingNode, Line: sn.Line, Column: sn.Column}
	var kindKey, kindVal *yaml.Node
	for i := 0; i+1 < len(sn.Content); i += 2 {
		k, v := sn.Content[i], sn.Content[i+1]
		if k.Kind == yaml.ScalarNode && (slices.Contains(stepKeys, k.Value) || k.Value == "<<") {
			common.Content = append(common.Content, k, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			e.at(k, "a key must be a plain name")
			continue
		}
		if _, ok := reg.Lookup(k.Value); !ok {
			if strings.Contains(k.Value, ".") || slices.Contains([]string{"cpu", "exec"}, k.Value) {
				e.at(k, "unknown check kind %q%s", k.Value, suggestOrList(k.Value, reg.Names()))
			} else {
				e.at(k, "unknown key %q%s", k.Value, suggestOrList(k.Value, append(slices.Clone(stepKeys), reg.Names()...)))
			}
			continue
		}
		if kindKey != nil {
			e.at(k, "a step runs one check: %q and %q are both here (make two steps)", kindKey.Value, k.Value)
			continue
		}
		kindKey, kindVal = k, v
	}
	d := decoder{e: e}
	d.decode(common, reflect.ValueOf(&st).Elem())
	if strings.TrimSpace(st.Name) == "" {
		e.at(sn, "missing name: every step needs a unique name")
	}
	if kindKey == nil {
		e.at(sn, "step %q has no check: add one of %s", st.Name, strings.Join(reg.Names(), ", "))
		return st, false
	}
	if !hasKey(sn, "timeout") {
		st.Timeout = def.Timeout
	} else if vn := valueNode(sn, "timeout"); st.Timeout == 0 && vn != nil {
		if _, err := checks.ParseDuration(vn.Value); err == nil {
			e.at(vn, "timeout must be greater than zero")
		}
	}
	if st.Timeout.D() > maxTimeout {
		e.at(valueNode(sn, "timeout"), "timeout %s is longer than %s", st.Timeout, maxTimeout)
	}
	if !hasKey(sn, "retries") {
		st.Retries = def.Retries
	} else if st.Retries < 0 || st.Retries > maxRetries {
		e.at(valueNode(sn, "retries"), "retries must be in [0, %d]", maxRetries)
	}
	if !hasKey(sn, "retry_delay") {
		st.RetryDelay = def.RetryDelay
	}
	checkMatch(e, sn, "when", st.When)

	kind, _ := reg.Lookup(kindKey.Value)
	st.Check = kind.Name()
	params := kind.NewParams()
	before := len(e.list)
	d.decode(kindVal, reflect.ValueOf(params).Elem())
	if len(e.list) == before {
		// Validate only well-typed params: a wrong type already has its error.
		for _, fe := range kind.Validate(params) {
			at := fieldNode(kindKey, kindVal, fe.Field)
			e.at(at, "%s: %s", kindKey.Value, fe.Error())
		}
	}
	if mt, ok := params.(checks.MinTimeouter); ok && len(e.list) == before {
		if least := mt.MinTimeout(); st.AttemptTimeout() < least {
			at := valueNode(sn, "timeout")
			if at == nil {
				at = kindKey
			}
			e.at(at, "timeout %s is shorter than %s needs with these parameters (%s)", st.AttemptTimeout(), kindKey.Value, least)
		}
	}
	st.Params = params
	return st, true
}

// fieldNode finds the node a FieldError's dotted path names: the value of that key, or the
// closest enclosing node when the key is absent (a missing required parameter).
func fieldNode(kindKey, params *yaml.Node, field string) *yaml.Node {
	at := yamldecode.ResolveAlias(params)
	if at == nil || yamldecode.IsNull(at) {
		return kindKey
	}
	if field == "" {
		return at
	}
	for _, part := range strings.Split(field, ".") {
		v := valueNode(at, part)
		if v == nil {
			return at
		}
		at = v
	}
	return at
}

func hasKey(m *yaml.Node, key string) bool { return keyNode(m, key) != nil }

// keyNode returns the key node of key in mapping m, or nil.
func keyNode(m *yaml.Node, key string) *yaml.Node {
	m = yamldecode.ResolveAlias(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

// valueNode returns the value node of key in mapping m, or nil.
func valueNode(m *yaml.Node, key string) *yaml.Node {
	m = yamldecode.ResolveAlias(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return yamldecode.ResolveAlias(m.Content[i+1])
		}
	}
	return nil
}

var varRefRE = regexp.MustCompile(`\$\$|\$\{([^}]*)\}`)

// substitute returns a copy of n with ${name} replaced in every scalar (keys excepted) and
// $$ standing for a literal $. A scalar that is exactly one ${name} takes the type the value
// has in YAML (so `min_csq: "${csq}"` is an integer when csq is 10); any other scalar with a
// variable in it is a string.
func substitute(e *errs, n *yaml.Node, vars map[string]string) *yaml.Node {
	return subst(e, n, vars, 0)
}

func subst(e *errs, n *yaml.Node, vars map[string]string, depth int) *yaml.Node {
	if n == nil {
		return nil
	}
	e.nodes++
	if depth > 100 || e.nodes > maxNodes {
		if !e.overflow {
			e.overflow = true
			e.at(n, "nested too deeply or too many aliases: expands beyond %d nodes", maxNodes)
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
	c := *n
	switch n.Kind {
	case yaml.AliasNode:
		if a := yamldecode.ResolveAlias(n); a != nil {
			c = *subst(e, a, vars, depth+1)
		}
	case yaml.MappingNode, yaml.SequenceNode, yaml.DocumentNode:
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, ch := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 {
				c.Content[i] = ch
				continue
			}
			c.Content[i] = subst(e, ch, vars, depth+1)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			break
		}
		whole := false
		if m := varRefRE.FindStringSubmatchIndex(n.Value); m != nil && m[0] == 0 && m[1] == len(n.Value) && m[2] >= 0 {
			whole = true
		}
		var missing []string
		out := varRefRE.ReplaceAllStringFunc(n.Value, func(ref string) string {
			if ref == "$$" {
				return "$"
			}
			name := ref[2 : len(ref)-1]
			v, ok := vars[name]
			if !ok {
				missing = append(missing, name)
				return ref
			}
			return v
		})
		for _, name := range missing {
			e.at(n, "undefined variable %q (declare it under vars)%s", name, yamldecode.Suggest(name, slices.Sorted(maps.Keys(vars))))
		}
		if out == n.Value {
			break
		}
		c.Value = out
		if whole {
			c.Tag, c.Style = "", 0
		} else {
			c.Tag, c.Style = "!!str", 0
		}
	}
	return &c
}

// Names of scenario keys, for docs and tools.
func TopLevelKeys() []string {
	keys := yamldecode.Keys(reflect.TypeFor[Scenario]())
	keys = append(keys, "steps")
	sort.Strings(keys)
	return keys
}

// ErrNotApplicable is returned by Plan for a device the scenario's match excludes.
var ErrNotApplicable = errors.New("scenario does not apply to this device")
