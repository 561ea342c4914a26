// Package console prints the agent's progress for the line operator: one short, timestamped
// line per event on the device's console (serial and screen), readable from across the room
// and greppable by test harnesses.
//
// A line looks like
//
//	[06:12:01.234 +12.3s] flashline: OK    network: eth0 52:54:00:12:34:56 10.0.2.15/24
//
// The wall clock helps to match the console with the server's logs; the time since the agent
// started shows where a slow boot spends its time even when the device's clock is wrong.
package console

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Level says how an event went; it picks the marker printed before the message.
type Level int

// The levels, from progress to failure.
const (
	Info Level = iota // a step starts or a fact worth knowing
	OK                // a step succeeded
	Warn              // something is wrong but the agent carries on (retries, fallbacks)
	Fail              // a step failed
)

// marker returns the fixed-width word printed for a level: plain ASCII so that every serial
// terminal shows it.
func (l Level) marker() string {
	switch l {
	case OK:
		return "OK   "
	case Warn:
		return "WARN "
	case Fail:
		return "FAIL "
	default:
		return "..   "
	}
}

// String returns the level's name.
func (l Level) String() string { return strings.TrimSpace(l.marker()) }

// Console writes progress lines to w. It is safe for concurrent use: lines from several
// goroutines never interleave.
type Console struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	start time.Time
	tag   string
}

// New returns a console writing to w; the elapsed time counts from now.
func New(w io.Writer) *Console {
	c := &Console{w: w, now: time.Now, tag: "flashline"}
	c.start = c.now()
	return c
}

// Discard returns a console that prints nothing, for callers that have none.
func Discard() *Console { return New(io.Discard) }

// Print writes one line at the given level. Newlines inside the message are kept but every
// continuation line is indented so that the next event still starts on a fresh, stamped line.
func (c *Console) Print(l Level, format string, args ...any) {
	if c == nil {
		return
	}
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	msg = strings.ReplaceAll(msg, "\n", "\n    ")
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	elapsed := now.Sub(c.start).Seconds()
	// A write error on the console cannot be reported anywhere better: ignore it.
	_, _ = fmt.Fprintf(c.w, "[%s +%.1fs] %s: %s%s\n", now.Format("15:04:05.000"), elapsed, c.tag, l.marker(), msg)
}

// Infof prints a progress line: a step starts or a fact worth knowing.
func (c *Console) Infof(format string, args ...any) { c.Print(Info, format, args...) }

// OKf prints that a step succeeded.
func (c *Console) OKf(format string, args ...any) { c.Print(OK, format, args...) }

// Warnf prints a problem the agent works around or retries.
func (c *Console) Warnf(format string, args ...any) { c.Print(Warn, format, args...) }

// Failf prints a failed step.
func (c *Console) Failf(format string, args ...any) { c.Print(Fail, format, args...) }

// Banner prints a large, unmissable block (final PASS/FAIL, fatal errors): a row of '=' above
// and below the lines, each line stamped like any other.
func (c *Console) Banner(l Level, lines ...string) {
	if c == nil {
		return
	}
	width := 0
	for _, s := range lines {
		width = max(width, len(s))
	}
	rule := strings.Repeat("=", min(max(width, 20), 72))
	c.Print(l, "%s", rule)
	for _, s := range lines {
		c.Print(l, "%s", s)
	}
	c.Print(l, "%s", rule)
}

// Writer returns an io.Writer whose every line becomes an Info line on the console, for
// handing to code that logs with the standard library (e.g. log.New(c.Writer(), "", 0)).
func (c *Console) Writer() io.Writer { return &lineWriter{c: c} }

type lineWriter struct {
	c   *Console
	mu  sync.Mutex
	buf []byte
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.buf = append(lw.buf, p...)
	for {
		i := strings.IndexByte(string(lw.buf), '\n')
		if i < 0 {
			break
		}
		line := string(lw.buf[:i])
		lw.buf = lw.buf[i+1:]
		if strings.TrimSpace(line) != "" {
			lw.c.Print(Info, "%s", line)
		}
	}
	return len(p), nil
}
