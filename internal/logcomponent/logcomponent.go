// Package logcomponent keeps one log key scheme across a program's parts: every record
// carries component=, the part's own (set with Logger.With("component", ...)) or, for the
// program's own lines (start-up, listening, shutdown), a default. A log reader can then
// filter any line by component without knowing which lines forgot it.
package logcomponent

import (
	"context"
	"log/slog"
)

// Key is the attribute every record carries.
const Key = "component"

// Handler adds Key=Default to records that have no component of their own.
type Handler struct {
	next    slog.Handler
	def     string
	has     bool // a With() above set the component
	inGroup bool // attributes now go into a group: a component there is not the top-level one
}

// New wraps next; records without a component get def.
func New(next slog.Handler, def string) *Handler { return &Handler{next: next, def: def} }

// Enabled reports whether next handles level.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle adds the default component when neither the logger nor the record has one.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if !h.has {
		found := false
		r.Attrs(func(a slog.Attr) bool {
			found = a.Key == Key
			return !found
		})
		if !found {
			if h.inGroup {
				// Added now it would land inside the group; the group's parent had none.
				return h.next.Handle(ctx, r)
			}
			r = r.Clone()
			r.AddAttrs(slog.String(Key, h.def))
		}
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs notes a component set on the logger.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	if !h.inGroup {
		for _, a := range as {
			if a.Key == Key {
				c.has = true
			}
		}
	}
	return &c
}

// WithGroup opens a group on next.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	if name != "" {
		c.inGroup = true
	}
	return &c
}
