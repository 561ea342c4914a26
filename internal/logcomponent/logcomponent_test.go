package logcomponent

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want string
	}{
		{"the program's own line gets the default", func(l *slog.Logger) { l.Info("http listening", "addr", ":8080") },
			`msg="http listening" addr=:8080 component=server`},
		{"a part's logger keeps its component", func(l *slog.Logger) { l.With("component", "tftp").Info("serving") },
			`msg=serving component=tftp`},
		{"a record's own component wins", func(l *slog.Logger) { l.Info("shutting down", "component", "dhcp") },
			`msg="shutting down" component=dhcp`},
		{"With other attributes still gets the default", func(l *slog.Logger) { l.With("mac", "aa").Warn("late") },
			`msg=late mac=aa component=server`},
		{"a component inside a group is not the line's", func(l *slog.Logger) { l.With("component", "api").WithGroup("req").Info("x", "component", "y") },
			`msg=x component=api req.component=y`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
					return slog.Attr{}
				}
				return a
			}})
			tc.log(slog.New(New(h, "server")))
			got := strings.TrimSpace(buf.String())
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if strings.Count(got, " component=") != 1 {
				t.Fatalf("want exactly one top-level component: %s", got)
			}
		})
	}
}
