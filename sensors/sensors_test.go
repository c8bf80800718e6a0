package sensors

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestSimSensor(t *testing.T) {
	s, err := NewSimSensor(Spec{Name: "sim1", Type: "sim"})
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		v, err := s.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		tc, h := v["temperature_c"].(float64), v["humidity_pct"].(float64)
		if tc < 15 || tc > 30 || h < 20 || h > 80 {
			t.Fatalf("values out of range: %v", v)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Read(ctx); err == nil {
		t.Error("Read with a cancelled ctx succeeded")
	}
}

func TestSimActuator(t *testing.T) {
	a, err := NewSimActuator(Spec{Name: "relay1", Type: "sim"})
	if err != nil {
		t.Fatal(err)
	}
	if a.State() != false {
		t.Error("relay does not start off")
	}
	if v, err := a.Set(context.Background(), true); err != nil || v != true || a.State() != true {
		t.Errorf("Set(true) = %v, %v", v, err)
	}
	for _, bad := range []any{"maybe", 2.0, nil, map[string]any{}} {
		_, err := a.Set(context.Background(), bad)
		if !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "relay1") {
			t.Errorf("Set(%v) = %v, want ErrBadValue naming relay1", bad, err)
		}
	}
	if a.State() != true {
		t.Error("a refused value changed the state")
	}
}

func TestSimRefusesOptions(t *testing.T) {
	_, err := NewSimSensor(Spec{Name: "s", Type: "sim", Options: map[string]any{"bus": "1"}})
	if !errors.Is(err, ErrOption) || !strings.Contains(err.Error(), `unknown option "bus" for type sim`) {
		t.Errorf("NewSimSensor with an option = %v", err)
	}
}

func TestParseSwitch(t *testing.T) {
	for _, v := range []any{true, 1.0, "on", "ON"} {
		if b, err := ParseSwitch("r", v); err != nil || !b {
			t.Errorf("ParseSwitch(%v) = %v, %v", v, b, err)
		}
	}
	for _, v := range []any{false, 0.0, "off"} {
		if b, err := ParseSwitch("r", v); err != nil || b {
			t.Errorf("ParseSwitch(%v) = %v, %v", v, b, err)
		}
	}
	for _, v := range []any{2.0, "yes", nil, []any{}} {
		if _, err := ParseSwitch("r", v); !errors.Is(err, ErrBadValue) {
			t.Errorf("ParseSwitch(%v) = %v, want ErrBadValue", v, err)
		}
	}
}

func TestCheckRanges(t *testing.T) {
	r := map[string]Range{"temperature_c": {-40, 85}}
	if err := CheckRanges(Values{"temperature_c": 21.5}, r); err != nil {
		t.Error(err)
	}
	if err := CheckRanges(Values{"temperature_c": 150.0}, r); !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), "temperature_c = 150") {
		t.Errorf("CheckRanges = %v", err)
	}
}
