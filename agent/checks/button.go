package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/flashline/flashline/agent/probe/evdev"
	"github.com/flashline/flashline/protocol"
)

// KeySource opens the input devices that can send a key.
type KeySource interface {
	OpenKey(ctx context.Context, code uint16) (KeyWatch, error)
}

// KeyDevice is one input device that can send the key.
type KeyDevice struct {
	Name  string // "Power Button", "gpio-keys", "QEMU Virtio Keyboard"
	Node  string // event0
	Where string // the bus: host, usb, bluetooth, virtual ...
	// Builtin is true for the machine's own buttons (ACPI, gpio-keys: the host bus), false
	// for anything plugged in.
	Builtin bool
}

func (d KeyDevice) String() string {
	if d.Where == "" {
		return fmt.Sprintf("%s (%s)", d.Name, d.Node)
	}
	return fmt.Sprintf("%s (%s, %s)", d.Name, d.Node, d.Where)
}

// KeyEvent is one event of the watched key and the device that delivered it.
type KeyEvent struct {
	Value  int32 // evdev.Press, evdev.Release or evdev.Repeat
	Device KeyDevice
}

// KeyWatch watches one key on one or more input devices.
type KeyWatch interface {
	// Devices lists the devices watched.
	Devices() []KeyDevice
	// Held returns the devices on which the key is down now.
	Held() ([]KeyDevice, error)
	// Next returns the next event of the key.
	Next(ctx context.Context) (KeyEvent, error)
	Close() error
}

// Key sources of button.press.
const (
	SourceAny     = "any"
	SourceBuiltin = "builtin"
)

// ButtonPressParams configure button.press.
type ButtonPressParams struct {
	Key    string `yaml:"key" json:"key" jsonschema_description:"Kernel key name: KEY_POWER, KEY_RESTART, KEY_PROG1, BTN_0 ..."`
	Prompt string `yaml:"prompt" json:"prompt,omitempty" jsonschema_description:"What the operator is asked; default: Press <key>"`
	// Release requires the key to be released again before the step passes.
	Release bool `yaml:"release" json:"release,omitempty" jsonschema:"default=true" jsonschema_description:"Wait for the release too"`
	// Source says which input device must deliver the key.
	Source string `yaml:"source" json:"source,omitempty" jsonschema:"default=any" jsonschema_description:"Which input device must deliver the key: any; builtin (the machine's own button: ACPI power button, gpio-keys, soc_button_array, intel-hid, all on the host bus; a key from a USB, Bluetooth or virtual keyboard fails the step); or a glob on the device's name (gpio-keys, Power Button)"`
}

// PromptsOperator is true: the operator must press the key.
func (ButtonPressParams) PromptsOperator() bool { return true }

// accepts reports whether a key from d counts for source.
func accepts(source string, d KeyDevice) bool {
	switch source {
	case "", SourceAny:
		return true
	case SourceBuiltin:
		return d.Builtin
	}
	return MatchGlob(source, d.Name)
}

func sourceText(source string) string {
	switch source {
	case "", SourceAny:
		return "any input device"
	case SourceBuiltin:
		return "the device's own button (source: builtin)"
	}
	return fmt.Sprintf("an input device named %q", source)
}

func keyDevices(ds []KeyDevice) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.String())
	}
	return strings.Join(s, ", ")
}

// ButtonPress is button.press: the operator presses a key and it is seen on evdev.
func ButtonPress(keys KeySource) Kind {
	return Define("button.press", "Ask the operator to press a button and see its press and release on evdev; a key held down before the prompt fails (stuck key), and with source: builtin a key from a plugged-in keyboard fails.",
		func() ButtonPressParams { return ButtonPressParams{Release: true, Source: SourceAny} },
		func(p ButtonPressParams) []FieldError {
			if p.Key == "" {
				return []FieldError{{"key", "must name a key, e.g. KEY_POWER"}}
			}
			if _, ok := evdev.KeyCode(p.Key); !ok {
				return []FieldError{{"key", fmt.Sprintf("unknown key %q (use the kernel's name, e.g. KEY_POWER)", p.Key)}}
			}
			if strings.TrimSpace(p.Source) != p.Source {
				return []FieldError{{"source", "must be any, builtin or a device name glob without surrounding spaces"}}
			}
			return nil
		},
		func(p ButtonPressParams) Check {
			code, _ := evdev.KeyCode(p.Key)
			name := strings.ToUpper(p.Key)
			prompt := p.Prompt
			if prompt == "" {
				prompt = "Press " + strings.TrimPrefix(strings.TrimPrefix(name, "KEY_"), "BTN_")
			}
			return CheckFunc(func(ctx context.Context, env *Env) (Outcome, error) {
				w, err := keys.OpenKey(ctx, code)
				if err != nil {
					return Failf(nil, "%s: %v", name, err), nil
				}
				defer w.Close()
				all := w.Devices()
				ms := []protocol.Measurement{Text("input_devices", keyDevices(all))}
				var ok []KeyDevice
				for _, d := range all {
					if accepts(p.Source, d) {
						ok = append(ok, d)
					}
				}
				if len(ok) == 0 {
					return Failf(ms, "%s: no input device of %s can send it (only %s)", name, sourceText(p.Source), keyDevices(all)), nil
				}
				held, err := w.Held()
				if err != nil {
					return Outcome{}, fmt.Errorf("read %s state: %w", name, err)
				}
				for _, d := range held {
					if accepts(p.Source, d) {
						return Failf(ms, "%s is held down on %s before the prompt: stuck key?", name, d), nil
					}
				}
				env.Operator.Prompt(env.Step, prompt)
				var pressedAt time.Time
				var on KeyDevice
				for {
					ev, err := w.Next(ctx)
					if err != nil {
						if ctx.Err() != nil {
							if !pressedAt.IsZero() {
								return Failf(ms, "%s pressed on %s but not released", name, on), nil
							}
							return Failf(ms, "%s not pressed", name), nil
						}
						return Outcome{}, err
					}
					if !accepts(p.Source, ev.Device) {
						if ev.Value == evdev.Press {
							// An operator's keyboard must not stand in for the box's own
							// button: the button itself is what is under test.
							ms = append(ms, Text("key_device", ev.Device.String()))
							return Failf(ms, "%s came from %s, not from %s: refused", name, ev.Device, sourceText(p.Source)), nil
						}
						continue
					}
					switch ev.Value {
					case evdev.Press:
						if pressedAt.IsZero() {
							pressedAt, on = time.Now(), ev.Device
							ms = append(ms, Text("key_device", on.String()))
						}
						if !p.Release {
							return Passf(ms, "%s pressed on %s", name, on), nil
						}
					case evdev.Release:
						if !pressedAt.IsZero() && ev.Device == on {
							held := time.Since(pressedAt)
							ms = append(ms, Num("press_ms", float64(held.Milliseconds()), "ms"))
							return Passf(ms, "%s pressed and released on %s (%d ms)", name, on, held.Milliseconds()), nil
						}
					}
				}
			})
		})
}

// SystemKeys watches keys on the live system's event devices.
type SystemKeys struct {
	Sys string
	Dev string
}

// OpenKey opens every event device whose capabilities include code.
func (s SystemKeys) OpenKey(ctx context.Context, code uint16) (KeyWatch, error) {
	infos, err := evdev.List(s.Sys, s.Dev)
	if err != nil {
		return nil, err
	}
	w := &evdevWatch{code: code, events: make(chan KeyEvent, 16), errc: make(chan error, 1)}
	var ctxW context.Context
	ctxW, w.cancel = context.WithCancel(context.Background())
	var openErrs []string
	for _, in := range infos {
		if !in.Keys.Has(code) {
			continue
		}
		d, err := evdev.Open(in.Path)
		if err != nil {
			openErrs = append(openErrs, err.Error())
			continue
		}
		w.devs = append(w.devs, d)
		w.info = append(w.info, KeyDevice{Name: in.Name, Node: in.Node, Where: in.Where(), Builtin: in.Builtin()})
	}
	if len(w.devs) == 0 {
		w.cancel()
		if len(openErrs) > 0 {
			return nil, errors.New(strings.Join(openErrs, "; "))
		}
		return nil, fmt.Errorf("no input device can send it (%d devices)", len(infos))
	}
	for i, d := range w.devs {
		w.wg.Add(1)
		go w.read(ctxW, d, w.info[i], code)
	}
	return w, nil
}

type evdevWatch struct {
	code   uint16
	devs   []*evdev.Device
	info   []KeyDevice
	events chan KeyEvent
	errc   chan error
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *evdevWatch) read(ctx context.Context, d *evdev.Device, from KeyDevice, code uint16) {
	defer w.wg.Done()
	for {
		ev, err := d.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				select {
				case w.errc <- err:
				default:
				}
			}
			return
		}
		if ev.Type == evdev.EvKey && ev.Code == code {
			select {
			case w.events <- KeyEvent{Value: ev.Value, Device: from}:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (w *evdevWatch) Devices() []KeyDevice { return w.info }

func (w *evdevWatch) Held() ([]KeyDevice, error) {
	var held []KeyDevice
	for i, d := range w.devs {
		st, err := d.KeyState()
		if err != nil {
			return nil, err
		}
		if st.Has(w.code) {
			held = append(held, w.info[i])
		}
	}
	return held, nil
}

func (w *evdevWatch) Next(ctx context.Context) (KeyEvent, error) {
	select {
	case v := <-w.events:
		return v, nil
	case err := <-w.errc:
		return KeyEvent{}, err
	case <-ctx.Done():
		return KeyEvent{}, ctx.Err()
	}
}

func (w *evdevWatch) Close() error {
	w.cancel()
	w.wg.Wait()
	var errs []error
	for _, d := range w.devs {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}
