package console

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func fixedClock(t0 time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	cur := t0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now := cur
		cur = cur.Add(step)
		return now
	}
}

func TestPrintFormat(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 6, 12, 1, 234_000_000, time.UTC)
	tests := []struct {
		name  string
		print func(c *Console)
		want  string
	}{
		{"info", func(c *Console) { c.Infof("loading %d modules", 3) }, "[06:12:02.734 +1.5s] flashline: ..   loading 3 modules\n"},
		{"ok", func(c *Console) { c.OKf("network up") }, "[06:12:02.734 +1.5s] flashline: OK   network up\n"},
		{"warn", func(c *Console) { c.Warnf("no answer") }, "[06:12:02.734 +1.5s] flashline: WARN no answer\n"},
		{"fail", func(c *Console) { c.Failf("boom") }, "[06:12:02.734 +1.5s] flashline: FAIL boom\n"},
		{"multiline", func(c *Console) { c.Infof("a\nb\n") }, "[06:12:02.734 +1.5s] flashline: ..   a\n    b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := newAt(&buf, fixedClock(t0, 1500*time.Millisecond))
			tt.print(c)
			if got := buf.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNilConsoleIsSilent(t *testing.T) {
	var c *Console
	c.Infof("nothing")
	c.Banner(OK, "x")
}

func TestBanner(t *testing.T) {
	var buf bytes.Buffer
	c := New(&buf)
	c.Banner(Fail, "DEVICE FAILED", "step 3: wifi")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		if !strings.Contains(l, "flashline: FAIL ") {
			t.Errorf("line %q lacks the FAIL marker", l)
		}
	}
	if !strings.HasSuffix(lines[0], strings.Repeat("=", 20)) || !strings.HasSuffix(lines[1], "DEVICE FAILED") {
		t.Errorf("unexpected banner:\n%s", buf.String())
	}
}

func TestConcurrentLinesDoNotInterleave(t *testing.T) {
	var buf bytes.Buffer
	c := New(&buf)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				c.Infof("%s", strings.Repeat("x", 100))
			}
		}()
	}
	wg.Wait()
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if !strings.HasSuffix(l, "..   "+strings.Repeat("x", 100)) {
			t.Fatalf("mangled line %q", l)
		}
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	c := New(&buf)
	w := c.Writer()
	w.Write([]byte("first li"))
	w.Write([]byte("ne\n\nsecond\n"))
	out := buf.String()
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "first line\n") || !strings.Contains(out, "second\n") {
		t.Errorf("unexpected output %q", out)
	}
}

// newAt is a console reading the time from now.
func newAt(w io.Writer, now func() time.Time) *Console {
	c := New(w)
	c.now = now
	c.start = now()
	return c
}
