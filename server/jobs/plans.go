package jobs

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/protocol"
	"github.com/flashline/flashline/server/config"
)

// Plan is what the line view needs of a scenario: its steps in order, each with the check it
// runs, the operator prompt and the parameters it checks against (the limits).
type Plan struct {
	Steps []PlanStep `json:"steps"`
}

// PlanStep is one step of a Plan.
type PlanStep struct {
	Name   string `json:"name"`
	Check  string `json:"check"`
	Prompt string `json:"prompt,omitempty"`
	// Limits renders the step's parameters ("min_signal_dbm=-65, ssid=LINE-TEST").
	Limits string `json:"limits,omitempty"`
}

// Step returns the step named name.
func (p Plan) Step(name string) (PlanStep, bool) {
	for _, s := range p.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return PlanStep{}, false
}

// Plans reads scenarios of a directory into Plans, re-read when a file changes. Safe for
// concurrent use.
type Plans struct {
	dir string

	mu    sync.Mutex
	cache map[string]cachedPlan
}

type cachedPlan struct {
	size  int64
	mtime time.Time
	plan  Plan
	err   error
}

// NewPlans returns the plans of the scenarios in dir.
func NewPlans(dir string) *Plans { return &Plans{dir: dir, cache: map[string]cachedPlan{}} }

// Plan returns the plan of the scenario file (relative to the directory).
func (p *Plans) Plan(file string) (Plan, error) {
	if err := config.CheckRelPath(file); err != nil {
		return Plan{}, fmt.Errorf("scenario: %w", err)
	}
	root, err := os.OpenRoot(p.dir)
	if err != nil {
		return Plan{}, fmt.Errorf("scenarios directory: %w", err)
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(file))
	if err != nil {
		return Plan{}, fmt.Errorf("scenario: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return Plan{}, fmt.Errorf("scenario %s: not a readable regular file", file)
	}
	p.mu.Lock()
	c, ok := p.cache[file]
	p.mu.Unlock()
	if ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.plan, c.err
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxScenarioBytes+1))
	if err != nil {
		return Plan{}, fmt.Errorf("scenario %s: %w", file, err)
	}
	c = cachedPlan{size: fi.Size(), mtime: fi.ModTime()}
	c.plan, c.err = parsePlan(file, b)
	p.mu.Lock()
	p.cache[file] = c
	p.mu.Unlock()
	return c.plan, c.err
}

func parsePlan(file string, b []byte) (Plan, error) {
	sc, err := scenario.Parse(file, b, checks.Default())
	if err != nil {
		return Plan{}, fmt.Errorf("scenario %s: %w", file, err)
	}
	var p Plan
	for _, st := range sc.Steps {
		p.Steps = append(p.Steps, PlanStep{Name: st.Name, Check: st.Check, Prompt: st.Prompt, Limits: renderParams(st.Params)})
	}
	return p, nil
}

// renderParams renders a check's parameters as sorted key=value pairs.
func renderParams(params any) string {
	if params == nil {
		return ""
	}
	b, err := json.Marshal(params)
	if err != nil {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v, _ := json.Marshal(m[k])
		parts = append(parts, k+"="+strings.Trim(string(v), `"`))
	}
	return strings.Join(parts, ", ")
}

// Explain says, for a device no rule matched, why each rule did not take it: the first
// condition of each rule that the device fails.
func (is *Issuer) Explain(inv protocol.Inventory, mac string) string {
	if len(is.rules) == 0 {
		return "no rules are configured"
	}
	var why []string
	for _, r := range is.rules {
		why = append(why, fmt.Sprintf("rule %q: %s", r.Name, mismatch(r.Match, inv, mac)))
	}
	return strings.Join(why, "; ")
}

// mismatch is the first condition of m the device fails.
func mismatch(m config.Match, inv protocol.Inventory, mac string) string {
	if m.Product != "" && !glob(m.Product, inv.DMI.Product) {
		return fmt.Sprintf("product %q does not match %q", inv.DMI.Product, m.Product)
	}
	if m.Serial != "" && !glob(m.Serial, inv.DMI.Serial) {
		return fmt.Sprintf("serial %q does not match %q", inv.DMI.Serial, m.Serial)
	}
	if len(m.MACs) > 0 && !Matches(config.Match{MACs: m.MACs}, inv, mac) {
		return fmt.Sprintf("MAC %s is not in %s", mac, strings.Join(m.MACs, ", "))
	}
	for _, mod := range m.Modules {
		name, want := strings.TrimPrefix(mod, "!"), !strings.HasPrefix(mod, "!")
		if Matches(config.Match{Modules: []string{mod}}, inv, mac) {
			continue
		}
		if want {
			return fmt.Sprintf("module %s is missing", name)
		}
		return fmt.Sprintf("module %s is present (the rule wants it absent)", name)
	}
	return "matches (this should not happen)"
}
