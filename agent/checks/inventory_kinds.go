package checks

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/flashline/flashline/protocol"
)

// DiskPresentParams configure disk.present.
type DiskPresentParams struct {
	MinSize   Size   `yaml:"min_size" json:"min_size,omitempty" jsonschema_description:"Smallest acceptable size: bytes or 16GB (decimal) / 16GiB (binary)"`
	Transport string `yaml:"transport" json:"transport,omitempty" jsonschema:"enum=virtio,enum=nvme,enum=sata,enum=mmc,enum=usb,enum=scsi" jsonschema_description:"How the disk is attached"`
	Model     string `yaml:"model" json:"model,omitempty" jsonschema_description:"Glob on the disk model (* and ?; case-insensitive)"`
	Count     int    `yaml:"count" json:"count,omitempty" jsonschema:"minimum=1,default=1" jsonschema_description:"How many matching disks there must be"`
}

// DiskPresent is disk.present: at least Count disks of the transport, model and size.
func DiskPresent() Kind {
	return Define("disk.present", "A disk of at least min_size, attached by transport, is present.",
		func() DiskPresentParams { return DiskPresentParams{Count: 1} },
		func(p DiskPresentParams) []FieldError {
			var errs []FieldError
			if p.Transport != "" && !slices.Contains(protocol.Transports(), p.Transport) {
				errs = append(errs, FieldError{"transport", fmt.Sprintf("unknown transport %q (want one of %s)", p.Transport, strings.Join(protocol.Transports(), ", "))})
			}
			if p.Count < 1 {
				errs = append(errs, FieldError{"count", "must be at least 1"})
			}
			if p.MinSize < 0 {
				errs = append(errs, FieldError{"min_size", "must not be negative"})
			}
			return errs
		},
		func(p DiskPresentParams) Check {
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				inv, err := env.Inventory.Inventory(ctx)
				if err != nil {
					return Outcome{}, fmt.Errorf("read inventory: %w", err)
				}
				var match []protocol.Disk
				var seen []string
				for _, d := range inv.Disks {
					seen = append(seen, fmt.Sprintf("%s %s %s", d.Name, Size(d.SizeBytes), orDash(d.Transport)))
					if p.Transport != "" && d.Transport != p.Transport {
						continue
					}
					if !MatchGlob(p.Model, d.Model) || d.SizeBytes < int64(p.MinSize) {
						continue
					}
					match = append(match, d)
				}
				var ms []protocol.Measurement
				if len(match) > 0 {
					best := slices.MaxFunc(match, func(a, b protocol.Disk) int { return cmpInt(a.SizeBytes, b.SizeBytes) })
					ms = append(ms, Num("size_bytes", float64(best.SizeBytes), "B"), Text("disk", best.Name))
					if best.Model != "" {
						ms = append(ms, Text("model", best.Model))
					}
				}
				ms = append(ms, Num("disks_matching", float64(len(match)), ""))
				want := describeDisk(p)
				if len(match) < p.Count {
					if len(seen) == 0 {
						seen = []string{"none"}
					}
					return Failf(ms, "want %d disk(s) %s, found %d (disks: %s)", p.Count, want, len(match), strings.Join(seen, "; ")), nil
				}
				return Passf(ms, "%s: %s %s", want, match[0].Name, Size(match[0].SizeBytes)), nil
			})
		})
}

func describeDisk(p DiskPresentParams) string {
	var parts []string
	if p.Transport != "" {
		parts = append(parts, p.Transport)
	}
	if p.Model != "" {
		parts = append(parts, "model "+p.Model)
	}
	if p.MinSize > 0 {
		parts = append(parts, ">= "+p.MinSize.String())
	}
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmpInt[T int | int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// MemoryMinParams configure memory.min.
type MemoryMinParams struct {
	Min Size `yaml:"min" json:"min" jsonschema_description:"Least RAM: bytes or 4GB / 4GiB. The inventory reports installed RAM from SMBIOS when the firmware lists it and the kernel's MemTotal otherwise (a little less than installed)"`
}

// MemoryMin is memory.min: the device has at least Min bytes of RAM.
func MemoryMin() Kind {
	return Define("memory.min", "The device has at least min bytes of RAM.",
		nil,
		func(p MemoryMinParams) []FieldError {
			if p.Min <= 0 {
				return []FieldError{{"min", "must be set and greater than zero"}}
			}
			return nil
		},
		func(p MemoryMinParams) Check {
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				inv, err := env.Inventory.Inventory(ctx)
				if err != nil {
					return Outcome{}, fmt.Errorf("read inventory: %w", err)
				}
				ms := []protocol.Measurement{Num("memory_bytes", float64(inv.MemoryBytes), "B")}
				if inv.MemoryBytes < uint64(p.Min) {
					return Failf(ms, "RAM %s < %s", Size(inv.MemoryBytes), p.Min), nil
				}
				return Passf(ms, "RAM %s >= %s", Size(inv.MemoryBytes), p.Min), nil
			})
		})
}

var usbIDRE = regexp.MustCompile(`^[0-9a-fA-F]{4}:([0-9a-fA-F]{4}|\*)$`)

// USBPresentParams configure usb.present.
type USBPresentParams struct {
	ID      string `yaml:"id" json:"id" jsonschema:"pattern=^[0-9a-fA-F]{4}:([0-9a-fA-F]{4}|\\*)$" jsonschema_description:"vid:pid in hex (2c7c:0125); pid * for any product of the vendor"`
	Product string `yaml:"product" json:"product,omitempty" jsonschema_description:"Glob on the USB product string"`
	Count   int    `yaml:"count" json:"count,omitempty" jsonschema:"minimum=1,default=1"`
}

// USBPresent is usb.present: a USB device with the vid:pid is attached.
func USBPresent() Kind {
	return Define("usb.present", "A USB device with the vid:pid is attached.",
		func() USBPresentParams { return USBPresentParams{Count: 1} },
		func(p USBPresentParams) []FieldError {
			var errs []FieldError
			if !usbIDRE.MatchString(p.ID) {
				errs = append(errs, FieldError{"id", fmt.Sprintf("%q is not vid:pid in hex, e.g. 2c7c:0125", p.ID)})
			}
			if p.Count < 1 {
				errs = append(errs, FieldError{"count", "must be at least 1"})
			}
			return errs
		},
		func(p USBPresentParams) Check {
			vid, pid, _ := strings.Cut(strings.ToLower(p.ID), ":")
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				inv, err := env.Inventory.Inventory(ctx)
				if err != nil {
					return Outcome{}, fmt.Errorf("read inventory: %w", err)
				}
				n := 0
				var first protocol.USBDevice
				for _, u := range inv.USB {
					if strings.ToLower(u.VID) != vid || (pid != "*" && strings.ToLower(u.PID) != pid) || !MatchGlob(p.Product, u.Product) {
						continue
					}
					if n == 0 {
						first = u
					}
					n++
				}
				ms := []protocol.Measurement{Num("usb_matching", float64(n), "")}
				if n < p.Count {
					return Failf(ms, "want %d USB device(s) %s, found %d among %d", p.Count, p.ID, n, len(inv.USB)), nil
				}
				ms = append(ms, Text("usb_device", fmt.Sprintf("%s:%s %s", first.VID, first.PID, first.Product)))
				return Passf(ms, "%s:%s %s at %s", first.VID, first.PID, first.Product, first.Path), nil
			})
		})
}

// CPUParams configure cpu.
type CPUParams struct {
	Model    string `yaml:"model" json:"model,omitempty" jsonschema_description:"Glob on the CPU model name (e.g. *Atom*x6425E*; case-insensitive)"`
	MinCores int    `yaml:"min_cores" json:"min_cores,omitempty" jsonschema:"minimum=0"`
	Cores    int    `yaml:"cores" json:"cores,omitempty" jsonschema:"minimum=0" jsonschema_description:"Exact number of logical CPUs"`
}

// CPU is cpu: the processor's model and core count.
func CPU() Kind {
	return Define("cpu", "The CPU model matches and it has enough cores.",
		nil,
		func(p CPUParams) []FieldError {
			var errs []FieldError
			if p.MinCores < 0 {
				errs = append(errs, FieldError{"min_cores", "must not be negative"})
			}
			if p.Cores < 0 {
				errs = append(errs, FieldError{"cores", "must not be negative"})
			}
			if p.Cores > 0 && p.MinCores > p.Cores {
				errs = append(errs, FieldError{"min_cores", fmt.Sprintf("min_cores %d > cores %d can never pass", p.MinCores, p.Cores)})
			}
			if p.Model == "" && p.MinCores == 0 && p.Cores == 0 {
				errs = append(errs, FieldError{"", "give at least one of model, min_cores, cores"})
			}
			return errs
		},
		func(p CPUParams) Check {
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				inv, err := env.Inventory.Inventory(ctx)
				if err != nil {
					return Outcome{}, fmt.Errorf("read inventory: %w", err)
				}
				ms := []protocol.Measurement{Text("cpu_model", inv.CPU.Model), Num("cores", float64(inv.CPU.Cores), "")}
				switch {
				case !MatchGlob(p.Model, inv.CPU.Model):
					return Failf(ms, "CPU %q does not match %q", inv.CPU.Model, p.Model), nil
				case p.Cores > 0 && inv.CPU.Cores != p.Cores:
					return Failf(ms, "%d cores, want %d", inv.CPU.Cores, p.Cores), nil
				case inv.CPU.Cores < p.MinCores:
					return Failf(ms, "%d cores < %d", inv.CPU.Cores, p.MinCores), nil
				}
				return Passf(ms, "%s, %d cores", inv.CPU.Model, inv.CPU.Cores), nil
			})
		})
}
