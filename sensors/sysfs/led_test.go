package sysfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeagent/agent/sensors"
)

func newLED(t *testing.T, env *sensors.Env, led string) *LED {
	t.Helper()
	a, err := NewLED(sensors.Spec{Name: "status", Type: "led", Options: map[string]any{"led": led}, Env: env})
	if err != nil {
		t.Fatalf("NewLED: %v", err)
	}
	return a.(*LED)
}

func brightness(t *testing.T, env *sensors.Env, led string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.SysRoot, "class", "leds", led, "brightness"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLEDSet(t *testing.T) {
	for _, tc := range []struct {
		led       string
		v         any
		want      int
		wantWrite string
	}{
		{"led0", true, 1, "1\n"},
		{"led0", "on", 1, "1\n"},
		{"led0", "ON", 1, "1\n"},
		{"led0", float64(1), 1, "1\n"},
		{"user-led1", true, 255, "255\n"},
		{"user-led1", "on", 255, "255\n"},
		{"user-led1", float64(1), 1, "1\n"}, // a number is a brightness
		{"user-led1", float64(128), 128, "128\n"},
		{"user-led1", float64(255), 255, "255\n"},
	} {
		t.Run(tc.led+"/"+sensors.DescribeValue(tc.v), func(t *testing.T) {
			env := boardCopy(t)
			l := newLED(t, env, tc.led)
			got, err := l.Set(context.Background(), tc.v)
			if err != nil {
				t.Fatalf("Set(%#v): %v", tc.v, err)
			}
			if got != tc.want {
				t.Errorf("Set(%#v) = %#v, want %d", tc.v, got, tc.want)
			}
			if w := brightness(t, env, tc.led); w != tc.wantWrite {
				t.Errorf("brightness file = %q, want %q", w, tc.wantWrite)
			}
			if s := l.State(); s != tc.want {
				t.Errorf("State = %#v, want %d", s, tc.want)
			}
			// And off again, by each of its forms.
			for _, off := range []any{false, "off", float64(0)} {
				if got, err := l.Set(context.Background(), off); err != nil || got != 0 {
					t.Errorf("Set(%#v) = %#v, %v; want 0", off, got, err)
				}
				if w := brightness(t, env, tc.led); w != "0\n" {
					t.Errorf("after Set(%#v) brightness file = %q, want \"0\\n\"", off, w)
				}
			}
		})
	}
}

func TestLEDSetRefuses(t *testing.T) {
	env := boardCopy(t)
	l := newLED(t, env, "user-led1")
	if _, err := l.Set(context.Background(), float64(7)); err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{"maybe", float64(256), float64(-1), float64(0.5), nil, map[string]any{}, "1"} {
		got, err := l.Set(context.Background(), v)
		if !errors.Is(err, sensors.ErrBadValue) || !strings.Contains(err.Error(), "0..255") {
			t.Errorf("Set(%#v) = %v, %v; want an ErrBadValue naming 0..255", v, got, err)
		}
	}
	if w := brightness(t, env, "user-led1"); w != "7\n" {
		t.Errorf("refused values changed the brightness file to %q", w)
	}
}

func TestLEDStateReadsBack(t *testing.T) {
	env := boardCopy(t)
	l := newLED(t, env, "user-led1")
	if s := l.State(); s != 0 {
		t.Errorf("State = %#v, want 0", s)
	}
	// The kernel (a trigger) changed it.
	if err := os.WriteFile(filepath.Join(env.SysRoot, "class", "leds", "user-led1", "brightness"), []byte("42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := l.State(); s != 42 {
		t.Errorf("State = %#v, want 42", s)
	}
}

func TestLEDErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]any
		want []string
	}{
		{"missing", map[string]any{"led": "led7"}, []string{`"led7"`, "found: led0, user-led1"}},
		{"required", map[string]any{}, []string{"led is required", "led0, user-led1"}},
		{"path", map[string]any{"led": "../thermal"}, []string{"directory name"}},
		{"unknown option", map[string]any{"led": "led0", "trigger": "none"}, []string{"unknown option", "trigger"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLED(sensors.Spec{Name: "status", Type: "led", Options: tc.opts, Env: board(t)})
			if err == nil {
				t.Fatal("NewLED succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	_, err := NewLED(sensors.Spec{Name: "status", Type: "led", Options: map[string]any{"led": "led0"}, Env: &sensors.Env{SysRoot: t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "no LEDs") {
		t.Errorf("NewLED on a machine without LEDs: %v, want an error saying so", err)
	}
}

func TestLEDWriteFails(t *testing.T) {
	env := boardCopy(t)
	l := newLED(t, env, "led0")
	if err := os.Remove(filepath.Join(env.SysRoot, "class", "leds", "led0", "brightness")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Set(context.Background(), true); err == nil || !strings.Contains(err.Error(), "led0") {
		t.Errorf("Set with the brightness file gone: %v, want an error naming the LED", err)
	}
	if _, err := os.Stat(filepath.Join(env.SysRoot, "class", "leds", "led0", "brightness")); err == nil {
		t.Error("Set created the brightness file")
	}
}
