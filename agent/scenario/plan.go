package scenario

import (
	"fmt"

	"github.com/flashline/flashline/agent/checks"
	"github.com/flashline/flashline/protocol"
)

// Planned is a step as it will run on one device.
type Planned struct {
	Step  Step
	Check checks.Check // nil when skipped
	Skip  string       // why the step does not run on this device ("" when it runs)
}

// Applies reports whether the scenario is for a device with this inventory, and when not, why.
func (s *Scenario) Applies(inv protocol.Inventory) (bool, string) {
	return s.Match.Matches(inv)
}

// Plan resolves the scenario for one device: it checks the scenario applies (or returns an
// error wrapping ErrNotApplicable), applies the variables of the matching variants, decodes
// the steps with them and builds each step's check. Steps whose `when` the device does not
// satisfy are planned as skipped.
func (s *Scenario) Plan(inv protocol.Inventory) ([]Planned, error) {
	if ok, why := s.Applies(inv); !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotApplicable, why)
	}
	vars := mergeVars(s.Vars, nil)
	for _, v := range s.Variants {
		if ok, _ := v.Match.Matches(inv); ok {
			vars = mergeVars(vars, v.Vars)
		}
	}
	e := &errs{file: s.File}
	steps := decodeSteps(e, s.stepsNode, s.reg, vars, s.Defaults)
	if len(e.list) > 0 {
		return nil, e.list.sortDedup()
	}
	plan := make([]Planned, 0, len(steps))
	for _, st := range steps {
		p := Planned{Step: st}
		if ok, why := st.When.Matches(inv); !ok {
			p.Skip = "not on this device: " + why
			plan = append(plan, p)
			continue
		}
		kind, ok := s.reg.Lookup(st.Check)
		if !ok {
			return nil, fmt.Errorf("%s:%d:%d: unknown check kind %q", s.File, st.Line, st.Col, st.Check)
		}
		c, err := kind.New(st.Params)
		if err != nil {
			return nil, fmt.Errorf("%s:%d:%d: step %q: %w", s.File, st.Line, st.Col, st.Name, err)
		}
		p.Check = c
		plan = append(plan, p)
	}
	return plan, nil
}
