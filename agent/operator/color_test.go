package operator

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestColorAuto(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	type tc struct {
		name string
		w    io.Writer
		env  map[string]string
		want bool
	}
	tests := []tc{
		{"buffer", &bytes.Buffer{}, map[string]string{"TERM": "xterm-256color"}, false},
		{"regular file", file, map[string]string{"TERM": "xterm-256color"}, false},
		{"NO_COLOR on a buffer", &bytes.Buffer{}, map[string]string{"TERM": "xterm", "NO_COLOR": "1"}, false},
	}
	// With a controlling terminal (an interactive run), colour follows TERM and NO_COLOR.
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		tests = append(tests, tc{"terminal", tty, map[string]string{"TERM": "xterm"}, true},
			tc{"NO_COLOR on a terminal", tty, map[string]string{"TERM": "xterm", "NO_COLOR": "1"}, false},
			tc{"dumb terminal", tty, map[string]string{"TERM": "dumb"}, false})
	}
	for _, tt := range tests {
		if got := ColorAuto(tt.w, env(tt.env)); got != tt.want {
			t.Errorf("%s: ColorAuto = %v, want %v", tt.name, got, tt.want)
		}
	}
}
