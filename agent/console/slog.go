package console

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Handler returns a slog.Handler that prints records at or above min on the console: Debug and
// Info as Info lines, Warn as Warn, Error as Fail, with the attributes as key=value after the
// message. Packages log with slog; the agent's main hands them this handler so that the
// operator sees what matters.
func (c *Console) Handler(min slog.Leveler) slog.Handler {
	if min == nil {
		min = slog.LevelInfo
	}
	return &handler{c: c, min: min}
}

type handler struct {
	c      *Console
	min    slog.Leveler
	prefix string // group prefix for attribute keys, "g1.g2."
	attrs  string // pre-rendered attributes from WithAttrs
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.min.Level() }

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.prefix, a)
		return true
	})
	lvl := Info
	switch {
	case r.Level >= slog.LevelError:
		lvl = Fail
	case r.Level >= slog.LevelWarn:
		lvl = Warn
	}
	h.c.Print(lvl, "%s", b.String())
	return nil
}

func writeAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			writeAttr(b, p, g)
		}
		return
	}
	v := a.Value.String()
	if strings.ContainsAny(v, " \t\"=") || v == "" {
		v = fmt.Sprintf("%q", v)
	}
	fmt.Fprintf(b, " %s%s=%s", prefix, a.Key, v)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		writeAttr(&b, h.prefix, a)
	}
	n := *h
	n.attrs = b.String()
	return &n
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix += name + "."
	return &n
}
