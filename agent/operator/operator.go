// Package operator is the line operator's view of a scenario run on the device console: the
// list of steps, each step's status as it changes, prompts that stand out, and a large PASS
// or FAIL banner naming the failed step and what it measured.
//
// Output is plain text, one line per change, so that it works on a serial console and in a
// log; ANSI colour is added only when the terminal is known to show it (see ColorFor).
package operator

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/flashline/flashline/agent/scenario"
	"github.com/flashline/flashline/protocol"
)

// Console prints a scenario run for the operator. It implements checks.Operator and takes
// scenario events through Event. Safe for concurrent use.
type Console struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
	total int
	width int // of the step names, for alignment
}

// New returns a console writing to w, with ANSI colour when color is set.
func New(w io.Writer, color bool) *Console {
	return &Console{w: w, color: color}
}

// ColorFor reports whether a terminal of type term (the TERM variable) shows ANSI colour.
// Serial consoles usually run with TERM unset, dumb, vt100 or vt102: no colour there.
func ColorFor(term string) bool {
	switch term {
	case "", "dumb", "vt52", "vt100", "vt102", "vt220", "unknown":
		return false
	}
	return true
}

const (
	red    = "\x1b[1;31m"
	green  = "\x1b[1;32m"
	yellow = "\x1b[1;33m"
	cyan   = "\x1b[1;36m"
	reset  = "\x1b[0m"
)

func (c *Console) paint(code, s string) string {
	if !c.color {
		return s
	}
	return code + s + reset
}

func (c *Console) printf(format string, args ...any) {
	// A console write error cannot be reported anywhere better.
	_, _ = fmt.Fprintf(c.w, format, args...)
}

// Plan prints the scenario's name and its steps, numbered, before the run starts.
func (c *Console) Plan(name string, plan []scenario.Planned) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total = len(plan)
	c.width = 0
	for _, p := range plan {
		c.width = max(c.width, min(len(p.Step.Name), 40))
	}
	rule := strings.Repeat("=", 64)
	c.printf("%s\n", rule)
	c.printf(" TEST SCENARIO: %s (%d steps)\n", name, len(plan))
	c.printf("%s\n", rule)
	for i, p := range plan {
		note := ""
		if p.Skip != "" {
			note = "  (skipped: " + p.Skip + ")"
		}
		if p.Step.Group != 0 {
			// Steps that run at once share a mark, so the operator is not surprised by
			// several RUN lines together.
			note = fmt.Sprintf("  [at once: group %d]", p.Step.Group) + note
		}
		c.printf(" %s  %-*s  %s%s\n", c.num(i), c.width, p.Step.Name, p.Step.Check, note)
	}
	c.printf("%s\n", rule)
}

func (c *Console) num(i int) string {
	w := len(strconv.Itoa(max(c.total, 1)))
	return fmt.Sprintf("[%*d/%d]", w, i+1, c.total)
}

// Event prints a step's change of status; give it to scenario.Runner's OnEvent.
func (c *Console) Event(ev scenario.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total == 0 {
		c.total = ev.Total
	}
	name := ev.Step.Name
	switch ev.Status {
	case protocol.StatusRunning:
		if ev.Attempt > 1 {
			c.printf(" %s %s %-*s  attempt %d/%d (last: %s)\n", c.num(ev.Index), c.paint(yellow, "RETRY"), c.width, name, ev.Attempt, ev.Step.Retries+1, ev.Message)
			return
		}
		c.printf(" %s %s %-*s  ...\n", c.num(ev.Index), c.paint(cyan, "RUN  "), c.width, name)
	case protocol.StatusPass:
		c.printf(" %s %s %-*s  %s%s\n", c.num(ev.Index), c.paint(green, "PASS "), c.width, name, detail(ev.Result), took(ev.Result))
	case protocol.StatusFail, protocol.StatusError:
		word := "FAIL "
		if ev.Status == protocol.StatusError {
			word = "ERROR"
		}
		c.printf(" %s %s %-*s  %s%s\n", c.num(ev.Index), c.paint(red, word), c.width, name, detail(ev.Result), took(ev.Result))
		if ms := Measurements(ev.Result); ms != "" {
			c.printf(" %s       %-*s  measured: %s\n", strings.Repeat(" ", len(c.num(ev.Index))), c.width, "", ms)
		}
	case protocol.StatusSkipped:
		c.printf(" %s %s %-*s  %s\n", c.num(ev.Index), "SKIP ", c.width, name, detail(ev.Result))
	}
}

func detail(r *protocol.StepResult) string {
	if r == nil {
		return ""
	}
	return r.Message
}

func took(r *protocol.StepResult) string {
	if r == nil || r.DurationMS == 0 {
		return ""
	}
	return fmt.Sprintf(" (%.1fs)", float64(r.DurationMS)/1000)
}

// Measurements formats a result's measurements: "csq=7, signal_dbm=-99 dBm, imei=8679...".
func Measurements(r *protocol.StepResult) string {
	if r == nil {
		return ""
	}
	var parts []string
	for _, m := range r.Measurements {
		switch {
		case m.Value != nil:
			v := strconv.FormatFloat(*m.Value, 'f', -1, 64)
			if m.Unit != "" {
				v += " " + m.Unit
			}
			parts = append(parts, m.Name+"="+v)
		case m.Text != "":
			parts = append(parts, m.Name+"="+m.Text)
		}
	}
	return strings.Join(parts, ", ")
}

// Prompt shows an instruction for the operator in a box that stands out, with a bell.
func (c *Console) Prompt(step, message string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := ">>> " + message + " <<<"
	w := max(len(line)+8, 48)
	bar := strings.Repeat("*", w)
	pad := w - 4 - len(line)
	c.printf("\a\n%s\n", c.paint(yellow, bar))
	c.printf("%s\n", c.paint(yellow, "**"+strings.Repeat(" ", w-4)+"**"))
	c.printf("%s\n", c.paint(yellow, "**"+strings.Repeat(" ", pad/2)+line+strings.Repeat(" ", pad-pad/2)+"**"))
	c.printf("%s\n", c.paint(yellow, "**"+strings.Repeat(" ", w-4)+"**"))
	c.printf("%s\n\n", c.paint(yellow, bar))
}

// big holds 5-row block letters for the banner words.
func big(word string) []string {
	glyphs := map[rune][5]string{
		'P': {"#### ", "#   #", "#### ", "#    ", "#    "},
		'A': {" ### ", "#   #", "#####", "#   #", "#   #"},
		'S': {" ####", "#    ", " ### ", "    #", "#### "},
		'F': {"#####", "#    ", "#### ", "#    ", "#    "},
		'I': {"#####", "  #  ", "  #  ", "  #  ", "#####"},
		'L': {"#    ", "#    ", "#    ", "#    ", "#####"},
	}
	rows := make([]string, 5)
	for _, r := range word {
		g := glyphs[r]
		for i := range rows {
			rows[i] += g[i] + "  "
		}
	}
	for i := range rows {
		rows[i] = strings.TrimRight(rows[i], " ")
	}
	return rows
}

// Summary prints the final banner: PASS, or FAIL with the failed step, why, and what it
// measured; then every step's status in one line each.
func (c *Console) Summary(name string, rep scenario.Report) {
	c.mu.Lock()
	defer c.mu.Unlock()
	word, paint := "PASS", green
	if rep.Status != protocol.StatusPass {
		word, paint = "FAIL", red
	}
	rule := strings.Repeat("#", 64)
	c.printf("\n%s\n\n", c.paint(paint, rule))
	for _, row := range big(word) {
		c.printf("        %s\n", c.paint(paint, row))
	}
	c.printf("\n")
	if rep.Status == protocol.StatusPass {
		c.printf("  %s: all %d steps passed\n", name, countStatus(rep, protocol.StatusPass))
	} else {
		c.printf("  FAILED STEP: %s\n", rep.FailedStep)
		c.printf("  REASON:      %s\n", rep.Reason)
		for i := range rep.Steps {
			if rep.Steps[i].Name == rep.FailedStep {
				if ms := Measurements(&rep.Steps[i]); ms != "" {
					c.printf("  MEASURED:    %s\n", ms)
				}
			}
		}
		var others []string
		for _, s := range rep.Steps {
			if s.Name != rep.FailedStep && (s.Status == protocol.StatusFail || s.Status == protocol.StatusError) {
				others = append(others, s.Name)
			}
		}
		if len(others) > 0 {
			c.printf("  ALSO FAILED: %s\n", strings.Join(others, ", "))
		}
	}
	c.printf("\n%s\n", c.paint(paint, rule))
	for _, s := range rep.Steps {
		c.printf("  %-7s %s\n", strings.ToUpper(string(s.Status)), s.Name)
	}
}

func countStatus(rep scenario.Report, st protocol.Status) int {
	n := 0
	for _, s := range rep.Steps {
		if s.Status == st {
			n++
		}
	}
	return n
}
