// Package membudget holds the agent's Go runtime to a memory budget. The agent runs from a
// ramdisk on devices with little RAM, and the flash pipeline and the xz decoder size
// themselves to a budget (flash.Options.Memory) on the assumption that the collector keeps
// the heap close to its live size: GOGC=50 instead of the default 100, and a soft memory
// limit at the budget. Both the journey and `flashline-agent flash` apply it, so that the
// flash behaves the same in either.
package membudget

import (
	"fmt"
	"runtime/debug"
)

// GCPercent is the collector's target the flash pipeline's sizing assumes.
const GCPercent = 50

// codePages is the agent's own resident code (about 8 MiB), which the budget counts and the
// runtime's limit leaves out.
const codePages = 8 << 20

// Settings are the runtime knobs to set; a negative value leaves that knob alone.
type Settings struct {
	GCPercent   int
	MemoryLimit int64
}

// For returns the settings for budget bytes. GOGC or GOMEMLIMIT in the environment win: an
// engineer who sets them means it. The limit is a soft one: the pipeline keeps its live heap
// well below it, since a limit below the live heap would make the collector run back to back
// (xz with two decoders under a 48 MiB limit spent 27 s of CPU collecting).
func For(budget int64, getenv func(string) string) (Settings, error) {
	if budget < 2*codePages {
		return Settings{}, fmt.Errorf("memory budget %d MiB: the agent needs at least %d MiB", budget>>20, 2*codePages>>20)
	}
	s := Settings{GCPercent: GCPercent, MemoryLimit: budget - codePages}
	if getenv("GOGC") != "" {
		s.GCPercent = -1
	}
	if getenv("GOMEMLIMIT") != "" {
		s.MemoryLimit = -1
	}
	return s, nil
}

// Apply sets s on the running program.
func Apply(s Settings) {
	if s.GCPercent >= 0 {
		debug.SetGCPercent(s.GCPercent)
	}
	if s.MemoryLimit >= 0 {
		debug.SetMemoryLimit(s.MemoryLimit)
	}
}
