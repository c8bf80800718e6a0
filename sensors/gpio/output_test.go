package gpio

import (
	"context"
	"errors"
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/edgeagent/agent/sensors"
)

func newOutput(t *testing.T, p gpio.PinIO, opts map[string]any) *Output {
	t.Helper()
	opts["pin"] = "GPIO17"
	a, err := NewOutput(sensors.Spec{Name: "pump", Type: "gpio-out", Options: opts, Env: env(map[string]gpio.PinIO{"GPIO17": p}, nil)})
	if err != nil {
		t.Fatalf("NewOutput: %v", err)
	}
	return a.(*Output)
}

func TestOutputInitial(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      map[string]any
		wantLine  gpio.Level
		wantState bool
	}{
		{"default off", map[string]any{}, gpio.Low, false},
		{"on", map[string]any{"initial": "on"}, gpio.High, true},
		{"off", map[string]any{"initial": "off"}, gpio.Low, false},
		{"active low off", map[string]any{"active_low": true}, gpio.High, false},
		{"active low on", map[string]any{"active_low": true, "initial": "on"}, gpio.Low, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Start the line opposite to what is wanted, so a missing write shows.
			p := &gpiotest.Pin{N: "GPIO17", L: !tc.wantLine}
			out := newOutput(t, p, tc.opts)
			if got := p.Read(); got != tc.wantLine {
				t.Errorf("line = %s, want %s", got, tc.wantLine)
			}
			if got := out.State(); got != tc.wantState {
				t.Errorf("State = %v, want %v", got, tc.wantState)
			}
		})
	}
}

func TestOutputSet(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		for _, tc := range []struct {
			v    any
			want bool
		}{
			{true, true}, {false, false},
			{float64(1), true}, {float64(0), false},
			{"on", true}, {"off", false}, {"ON", true}, {"Off", false},
		} {
			name := strings.TrimSpace(strings.ReplaceAll(describeForTest(tc.v), " ", "_"))
			if activeLow {
				name += "/active_low"
			}
			t.Run(name, func(t *testing.T) {
				p := &gpiotest.Pin{N: "GPIO17"}
				out := newOutput(t, p, map[string]any{"active_low": activeLow, "initial": map[bool]string{true: "off", false: "on"}[tc.want]})
				got, err := out.Set(context.Background(), tc.v)
				if err != nil {
					t.Fatalf("Set(%#v): %v", tc.v, err)
				}
				if got != tc.want {
					t.Errorf("Set(%#v) = %v, want %v", tc.v, got, tc.want)
				}
				if s := out.State(); s != tc.want {
					t.Errorf("State = %v, want %v", s, tc.want)
				}
				if line, want := p.Read(), gpio.Level(tc.want != activeLow); line != want {
					t.Errorf("line = %s, want %s", line, want)
				}
			})
		}
	}
}

func describeForTest(v any) string {
	switch x := v.(type) {
	case string:
		return "string " + x
	case float64:
		if x == 0 {
			return "number 0"
		}
		return "number 1"
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return "?"
}

func TestOutputSetRefuses(t *testing.T) {
	for _, v := range []any{"maybe", float64(2), float64(0.5), nil, "", map[string]any{}, []any{true}} {
		p := &gpiotest.Pin{N: "GPIO17"}
		out := newOutput(t, p, map[string]any{"initial": "on"})
		got, err := out.Set(context.Background(), v)
		if !errors.Is(err, sensors.ErrBadValue) {
			t.Errorf("Set(%#v) = %v, %v; want an error wrapping ErrBadValue", v, got, err)
		}
		if p.Read() != gpio.High || out.State() != true {
			t.Errorf("Set(%#v) refused but changed the output: line %s, State %v", v, p.Read(), out.State())
		}
	}
}

func TestOutputOnStop(t *testing.T) {
	for _, tc := range []struct {
		onStop    string
		activeLow bool
		wantLine  gpio.Level
		wantState bool
	}{
		{"", false, gpio.High, true}, // default keep
		{"keep", false, gpio.High, true},
		{"off", false, gpio.Low, false},
		{"on", false, gpio.High, true},
		{"off", true, gpio.High, false},
	} {
		t.Run(tc.onStop, func(t *testing.T) {
			p := &gpiotest.Pin{N: "GPIO17"}
			opts := map[string]any{"active_low": tc.activeLow}
			if tc.onStop != "" {
				opts["on_stop"] = tc.onStop
			}
			out := newOutput(t, p, opts)
			// From on, so that keep and off differ; from off for "on".
			start := tc.onStop != "on"
			if _, err := out.Set(context.Background(), start); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := p.Read(); got != tc.wantLine {
				t.Errorf("line after Close = %s, want %s", got, tc.wantLine)
			}
			if got := out.State(); got != tc.wantState {
				t.Errorf("State after Close = %v, want %v", got, tc.wantState)
			}
		})
	}
}

// failPin is a line whose writes fail.
type failPin struct{ gpiotest.Pin }

func (p *failPin) Out(gpio.Level) error { return errors.New("line busy") }

func TestOutputWriteFails(t *testing.T) {
	_, err := NewOutput(sensors.Spec{Name: "pump", Type: "gpio-out", Options: map[string]any{"pin": "GPIO17"}, Env: env(map[string]gpio.PinIO{"GPIO17": &failPin{}}, nil)})
	if err == nil || !strings.Contains(err.Error(), "GPIO17") || !strings.Contains(err.Error(), "line busy") {
		t.Errorf("NewOutput with a failing line: %v, want an error naming the pin and the cause", err)
	}

	fp := &failPin{}
	out := &Output{name: "pump", pinName: "GPIO17", pin: fp, onStop: "off"}
	if _, err := out.Set(context.Background(), true); err == nil || !strings.Contains(err.Error(), "GPIO17") {
		t.Errorf("Set on a failing line: %v, want an error naming the pin", err)
	}
	if out.State() != false {
		t.Errorf("State after a failed Set = %v, want false (unchanged)", out.State())
	}
	if err := out.Close(); err == nil || !strings.Contains(err.Error(), "GPIO17") {
		t.Errorf("Close on a failing line: %v, want an error naming the pin", err)
	}
}

func TestOutputOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]any
		want []string
	}{
		{"unknown option", map[string]any{"pin": "GPIO17", "inital": "on"}, []string{"unknown option", "inital"}},
		{"no pin", map[string]any{}, []string{"pin is required"}},
		{"unknown pin", map[string]any{"pin": "gpiochip9/3"}, []string{"gpiochip9/3", "gpioinfo"}},
		{"bad initial", map[string]any{"pin": "GPIO17", "initial": "high"}, []string{"initial", "high"}},
		{"bad on_stop", map[string]any{"pin": "GPIO17", "on_stop": "reset"}, []string{"on_stop", "reset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewOutput(sensors.Spec{Name: "pump", Type: "gpio-out", Options: tc.opts, Env: env(map[string]gpio.PinIO{"GPIO17": &gpiotest.Pin{}}, nil)})
			if err == nil {
				t.Fatal("NewOutput succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := NewOutput(sensors.Spec{Name: "pump", Type: "gpio-out", Options: map[string]any{"pin": "GPIO17"}}); err == nil {
		t.Error("NewOutput with no Env succeeded, want an error")
	}
}

func TestHostPinNoChips(t *testing.T) {
	if _, err := chipLine(nil, "gpiochip0", "17"); err == nil || !strings.Contains(err.Error(), "host.Init") {
		t.Errorf("chipLine with no chips: %v, want an error about host.Init", err)
	}
	if _, err := HostPin("NO_SUCH_LINE_X"); err == nil || !strings.Contains(err.Error(), "NO_SUCH_LINE_X") {
		t.Errorf("HostPin(unknown): %v, want an error naming it", err)
	}
}
