package sensors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
)

// Env is what the kinds need from the machine. Every field is injected, so
// tests hand in periph's fakes and fixture trees.
type Env struct {
	// I2C returns the bus named in config ("/dev/i2c-1" or "1"). One bus is
	// opened once and shared; its transactions are serialized.
	I2C func(bus string) (i2c.Bus, error)
	// Pin returns a GPIO line by periph name ("GPIO17") or "gpiochip0/17".
	Pin      func(name string) (gpio.PinIO, error)
	SysRoot  string // "/sys"
	ProcRoot string // "/proc"
	Clock    Clock
	Logger   *slog.Logger
}

// Spec is what config says about one sensor or actuator.
type Spec struct {
	Name string
	Type string
	// Options are the table's other keys, for the kind to decode with
	// DecodeOptions.
	Options map[string]any
	Env     *Env
}

// ErrOption is wrapped by DecodeOptions' refusals.
var ErrOption = errors.New("bad option")

// DecodeOptions decodes s.Options strictly into v, a pointer to a struct
// with toml tags: an unknown key is an error naming it and the known ones,
// a value of the wrong type names the key.
func DecodeOptions(s Spec, v any) error {
	if len(s.Options) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(s.Options); err != nil {
		return fmt.Errorf("%w: %v", ErrOption, err)
	}
	md, err := toml.NewDecoder(&buf).Decode(v)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.LastKey != "" {
			return fmt.Errorf("%w: %s: %s", ErrOption, pe.LastKey, pe.Message)
		}
		return fmt.Errorf("%w: %v", ErrOption, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return fmt.Errorf("%w: unknown option %q for type %s (known: %s)", ErrOption, keys[0], s.Type, strings.Join(optionNames(v), ", "))
	}
	return nil
}

// optionNames lists the toml keys of the struct v points to, including
// those of embedded structs.
func optionNames(v any) []string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			switch {
			case f.Anonymous && name == "":
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				walk(ft)
			case name == "-":
			case name != "":
				out = append(out, name)
			case f.IsExported():
				out = append(out, strings.ToLower(f.Name))
			}
		}
	}
	if t != nil {
		walk(t)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// Watcher is a sensor that also reports on its own (a GPIO input's edges):
// Watch runs until ctx ends and calls emit for each event.
type Watcher interface {
	Watch(ctx context.Context, emit func(Values)) error
}

// ReadingSlot is implemented by a shared bus that serializes whole
// readings: a kind holds the slot (a one-element channel: send to take,
// receive to give back) for the length of one reading.
type ReadingSlot interface {
	ReadingSlot() chan struct{}
}

// Keyed is a sensor that says which value keys it reports, before its
// first reading (for Home Assistant discovery).
type Keyed interface {
	Keys() []string
}

// Range is a datasheet's valid range for one value.
type Range struct{ Min, Max float64 }

// ErrOutOfRange is wrapped by CheckRanges' refusals.
var ErrOutOfRange = errors.New("out of range")

// CheckRanges refuses a reading with a value outside its range: such a
// value is a fault to flag, not data.
func CheckRanges(v Values, ranges map[string]Range) error {
	for k, r := range ranges {
		x, ok := v[k].(float64)
		if ok && (x < r.Min || x > r.Max) {
			return fmt.Errorf("%w: %s = %v, outside the datasheet's %v..%v", ErrOutOfRange, k, x, r.Min, r.Max)
		}
	}
	return nil
}

// ParseSwitch reads an on/off command value: true/false, 0/1 or
// "on"/"off"; anything else wraps ErrBadValue.
func ParseSwitch(name string, v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case float64:
		if x == 0 || x == 1 {
			return x == 1, nil
		}
	case string:
		switch strings.ToLower(x) {
		case "on":
			return true, nil
		case "off":
			return false, nil
		}
	}
	return false, fmt.Errorf("actuator %q takes true/false, 0/1 or \"on\"/\"off\", got %s: %w", name, DescribeValue(v), ErrBadValue)
}

// Closer is an actuator or sensor with something to do on a clean stop
// (an output's on_stop state, a bus to release).
type Closer interface {
	Close() error
}

// Clock is time, injected where behaviour depends on it (the scheduler,
// debounce), so tests drive it.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a resettable timer from a Clock.
type Timer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop()                 { r.t.Stop() }

// DescribeValue names a JSON-decoded command value's type and value for an
// error message ("string \"maybe\"", "number 2", "an object").
func DescribeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if len(x) > 32 {
			x = x[:32] + "…"
		}
		return fmt.Sprintf("string %q", x)
	case float64:
		return fmt.Sprintf("number %v", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
