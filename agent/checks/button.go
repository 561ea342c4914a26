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

// KeyWatch watches one key on one or more input devices.
type KeyWatch interface {
	// Devices names the devices watched ("gpio-keys (event2)").
	Devices() []string
	// Held reports whether the key is down now on any device.
	Held() (bool, error)
	// Next returns the next event of the key: evdev.Press, evdev.Release or evdev.Repeat.
	Next(ctx context.Context) (value int32, err error)
	Close() error
}

// ButtonPressParams configure button.press.
type ButtonPressParams struct {
	Key    string `yaml:"key" json:"key" jsonschema_description:"Kernel key name: KEY_POWER, KEY_RESTART, KEY_PROG1, BTN_0 ..."`
	Prompt string `yaml:"prompt" json:"prompt,omitempty" jsonschema_description:"What the operator is asked; default: Press <key>"`
	// Release requires the key to be released again before the step passes.
	Release bool `yaml:"release" json:"release,omitempty" jsonschema:"default=true" jsonschema_description:"Wait for the release too"`
}

// PromptsOperator is true: the operator must press the key.
func (ButtonPressParams) PromptsOperator() bool { return true }

// ButtonPress is button.press: the operator presses a key and it is seen on evdev.
func ButtonPress(keys KeySource) Kind {
	return Define("button.press", "Ask the operator to press a button and see its press and release on evdev; a key held down before the prompt fails (stuck key).",
		func() ButtonPressParams { return ButtonPressParams{Release: true} },
		func(p ButtonPressParams) []FieldError {
			if p.Key == "" {
				return []FieldError{{"key", "must name a key, e.g. KEY_POWER"}}
			}
			if _, ok := evdev.KeyCode(p.Key); !ok {
				return []FieldError{{"key", fmt.Sprintf("unknown key %q (use the kernel's name, e.g. KEY_POWER)", p.Key)}}
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
				ms := []protocol.Measurement{Text("input_devices", strings.Join(w.Devices(), ", "))}
				held, err := w.Held()
				if err != nil {
					return Outcome{}, fmt.Errorf("read %s state: %w", name, err)
				}
				if held {
					return Failf(ms, "%s is held down before the prompt: stuck key?", name), nil
				}
				env.Operator.Prompt(env.Step, prompt)
				var pressedAt time.Time
				for {
					v, err := w.Next(ctx)
					if err != nil {
						if ctx.Err() != nil {
							if !pressedAt.IsZero() {
								return Failf(ms, "%s pressed but not released", name), nil
							}
							return Failf(ms, "%s not pressed", name), nil
						}
						return Outcome{}, err
					}
					switch v {
					case evdev.Press:
						if pressedAt.IsZero() {
							pressedAt = time.Now()
						}
						if !p.Release {
							return Passf(ms, "%s pressed", name), nil
						}
					case evdev.Release:
						if !pressedAt.IsZero() {
							held := time.Since(pressedAt)
							ms = append(ms, Num("press_ms", float64(held.Milliseconds()), "ms"))
							return Passf(ms, "%s pressed and released (%d ms)", name, held.Milliseconds()), nil
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
	w := &evdevWatch{code: code, events: make(chan int32, 16), errc: make(chan error, 1)}
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
		w.names = append(w.names, fmt.Sprintf("%s (%s)", in.Name, in.Node))
	}
	if len(w.devs) == 0 {
		w.cancel()
		if len(openErrs) > 0 {
			return nil, errors.New(strings.Join(openErrs, "; "))
		}
		return nil, fmt.Errorf("no input device can send it (%d devices)", len(infos))
	}
	for _, d := range w.devs {
		w.wg.Add(1)
		go w.read(ctxW, d, code)
	}
	return w, nil
}

type evdevWatch struct {
	code   uint16
	devs   []*evdev.Device
	names  []string
	events chan int32
	errc   chan error
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *evdevWatch) read(ctx context.Context, d *evdev.Device, code uint16) {
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
			case w.events <- ev.Value:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (w *evdevWatch) Devices() []string { return w.names }

func (w *evdevWatch) Held() (bool, error) {
	for _, d := range w.devs {
		st, err := d.KeyState()
		if err != nil {
			return false, err
		}
		if st.Has(w.code) {
			return true, nil
		}
	}
	return false, nil
}

func (w *evdevWatch) Next(ctx context.Context) (int32, error) {
	select {
	case v := <-w.events:
		return v, nil
	case err := <-w.errc:
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
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
