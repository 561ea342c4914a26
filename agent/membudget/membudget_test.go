package membudget

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestFor(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	tests := []struct {
		name   string
		budget int64
		env    map[string]string
		want   Settings
		err    bool
	}{
		{"journey default", 64 << 20, nil, Settings{GCPercent: 50, MemoryLimit: 56 << 20}, false},
		{"flash --memory 160", 160 << 20, nil, Settings{GCPercent: 50, MemoryLimit: 152 << 20}, false},
		{"GOGC set", 64 << 20, map[string]string{"GOGC": "200"}, Settings{GCPercent: -1, MemoryLimit: 56 << 20}, false},
		{"GOMEMLIMIT set", 64 << 20, map[string]string{"GOMEMLIMIT": "1GiB"}, Settings{GCPercent: 50, MemoryLimit: -1}, false},
		{"too small", 8 << 20, nil, Settings{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := For(tt.budget, env(tt.env))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("For = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	oldGC := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(oldGC); debug.SetMemoryLimit(oldLimit) })

	Apply(Settings{GCPercent: 50, MemoryLimit: 56 << 20})
	if gc := debug.SetGCPercent(-1); gc != 50 {
		t.Errorf("GC percent %d, want 50", gc)
	}
	if l := debug.SetMemoryLimit(-1); l != 56<<20 {
		t.Errorf("memory limit %d, want %d", l, 56<<20)
	}
	debug.SetGCPercent(70)
	Apply(Settings{GCPercent: -1, MemoryLimit: -1})
	if gc := debug.SetGCPercent(-1); gc != 70 {
		t.Errorf("GC percent changed to %d by a -1 setting", gc)
	}
}
