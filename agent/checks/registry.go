package checks

import (
	"fmt"
	"sort"
)

// Registry maps kind names to kinds. It is immutable once made.
type Registry struct {
	kinds map[string]Kind
	names []string
}

// New returns a registry of the given kinds; two kinds with one name are an error.
func New(kinds ...Kind) (*Registry, error) {
	r := &Registry{kinds: make(map[string]Kind, len(kinds))}
	for _, k := range kinds {
		if k == nil {
			continue
		}
		if _, dup := r.kinds[k.Name()]; dup {
			return nil, fmt.Errorf("check kind %q registered twice", k.Name())
		}
		r.kinds[k.Name()] = k
		r.names = append(r.names, k.Name())
	}
	sort.Strings(r.names)
	return r, nil
}

// Default returns the registry of every kind with its kernel-backed implementation, reading
// the live system (/sys, /dev). Making it opens no device: kinds touch hardware only in Run,
// so lint can use it anywhere.
func Default() *Registry {
	return DefaultAt(System{})
}

// System names the roots of the live system; tests point them at fake trees.
type System struct {
	Sys string // "/sys" when empty
	Dev string // "/dev" when empty
}

func (s System) sys() string {
	if s.Sys == "" {
		return "/sys"
	}
	return s.Sys
}

func (s System) dev() string {
	if s.Dev == "" {
		return "/dev"
	}
	return s.Dev
}

// DefaultAt is Default with the system's roots given.
func DefaultAt(sys System) *Registry {
	kinds := []Kind{
		DiskPresent(),
		MemoryMin(),
		USBPresent(),
		CPU(),
		EthernetLink(SystemLinks{Sys: sys.sys()}),
		LTEModem(SystemModems{Sys: sys.sys(), Dev: sys.dev()}),
		ButtonPress(SystemKeys{Sys: sys.sys(), Dev: sys.dev()}),
		Exec(),
	}
	kinds = append(kinds, radioKinds(sys)...)
	r, err := New(kinds...)
	if err != nil {
		// Only a programming error (two kinds with one name) gets here; the registry's
		// tests catch it before a build ships.
		panic(err)
	}
	return r
}

// Lookup returns the kind named name.
func (r *Registry) Lookup(name string) (Kind, bool) {
	k, ok := r.kinds[name]
	return k, ok
}

// Names returns every kind's name, sorted.
func (r *Registry) Names() []string {
	return append([]string(nil), r.names...)
}

// Kinds returns every kind, sorted by name.
func (r *Registry) Kinds() []Kind {
	out := make([]Kind, 0, len(r.names))
	for _, n := range r.names {
		out = append(out, r.kinds[n])
	}
	return out
}
