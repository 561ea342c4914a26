package api

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/flashline/flashline/protocol"
)

// Limits bound what one request may make the server read and store.
type Limits struct {
	// BodyTimeout bounds receiving a request body; a slower one is answered 408.
	BodyTimeout time.Duration
	// HelloMaxBody is the largest hello body accepted (an inventory is a few kB).
	HelloMaxBody int64
	// HelloMaxList caps every list in a hello (disks, NICs, USB devices, radios, inputs,
	// modules, timings): each one is stored with the run.
	HelloMaxList int
	// HelloMaxString caps every string in a hello.
	HelloMaxString int
}

// Defaults of [Limits].
const (
	DefaultBodyTimeout    = time.Minute
	DefaultHelloMaxBody   = 256 << 10
	DefaultHelloMaxList   = 128
	DefaultHelloMaxString = 256
)

func (l *Limits) setDefaults() {
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.HelloMaxBody <= 0 {
		l.HelloMaxBody = DefaultHelloMaxBody
	}
	l.HelloMaxBody = min(l.HelloMaxBody, protocol.MaxBodyBytes)
	if l.HelloMaxList <= 0 {
		l.HelloMaxList = DefaultHelloMaxList
	}
	if l.HelloMaxString <= 0 {
		l.HelloMaxString = DefaultHelloMaxString
	}
}

// CheckHello refuses a hello with a list longer than HelloMaxList or a string longer than
// HelloMaxString anywhere in it, naming the field (as its JSON path) so that the device's
// console says what is wrong. A zero Limits checks with the defaults.
func (l Limits) CheckHello(h *protocol.Hello) error {
	l.setDefaults()
	return l.walk(reflect.ValueOf(h).Elem(), "")
}

func (l Limits) walk(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.String:
		if n := v.Len(); n > l.HelloMaxString {
			return fmt.Errorf("%s: %d bytes, at most %d", path, n, l.HelloMaxString)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if n := v.Len(); n > l.HelloMaxString {
				return fmt.Errorf("%s: %d bytes, at most %d", path, n, l.HelloMaxString)
			}
			return nil
		}
		if n := v.Len(); n > l.HelloMaxList {
			return fmt.Errorf("%s: %d entries, at most %d (too many %s)", path, n, l.HelloMaxList, listNoun(path))
		}
		for i := range v.Len() {
			if err := l.walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n := v.Len(); n > l.HelloMaxList {
			return fmt.Errorf("%s: %d entries, at most %d", path, n, l.HelloMaxList)
		}
		it := v.MapRange()
		for it.Next() {
			if err := l.walk(it.Key(), path+" key"); err != nil {
				return err
			}
			if err := l.walk(it.Value(), fmt.Sprintf("%s[%v]", path, it.Key())); err != nil {
				return err
			}
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return l.walk(v.Elem(), path)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if path != "" {
				name = path + "." + name
			}
			if err := l.walk(v.Field(i), name); err != nil {
				return err
			}
		}
	}
	return nil
}

// listNoun turns "inventory.nics" into "nics" for the message.
func listNoun(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		path = path[i+1:]
	}
	if i := strings.IndexByte(path, '['); i >= 0 {
		path = path[:i]
	}
	return path
}
