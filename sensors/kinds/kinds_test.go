package kinds

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"periph.io/x/conn/v3/i2c"

	"github.com/edgeagent/agent/sensors"
)

func absent() *sensors.Env {
	return &sensors.Env{I2C: func(string) (i2c.Bus, error) { return nil, errors.New("no bus") }, Clock: sensors.RealClock{}}
}

func TestConfigErrorsAndDeferral(t *testing.T) {
	_, err := NewSensor(sensors.Spec{Name: "x", Type: "thermo"})
	if !IsConfigError(err) || !strings.Contains(err.Error(), `unknown type "thermo"`) {
		t.Errorf("unknown type: %v", err)
	}
	_, err = NewSensor(sensors.Spec{Name: "x", Type: "bme280", Options: map[string]any{"bus": "1", "adress": 0x76}, Env: absent()})
	if !IsConfigError(err) || !strings.Contains(err.Error(), `unknown option "adress"`) || !strings.Contains(err.Error(), "known: address, bus") {
		t.Errorf("misspelt option: %v", err)
	}
	spec := sensors.Spec{Name: "x", Type: "bme280", Options: map[string]any{"bus": "1"}, Env: absent()}
	_, err = NewSensor(spec)
	if err == nil || IsConfigError(err) {
		t.Fatalf("absent bus: %v, want a hardware error", err)
	}
	d := DeferredSensor(spec)
	if k := d.(sensors.Keyed).Keys(); !slices.Equal(k, []string{"temperature_c", "humidity_pct", "pressure_hpa"}) {
		t.Errorf("deferred keys = %v", k)
	}
	if _, ok := d.(sensors.Watcher); ok {
		t.Error("a deferred I2C sensor watches")
	}
	if _, ok := DeferredSensor(sensors.Spec{Name: "door", Type: "gpio-in"}).(sensors.Watcher); !ok {
		t.Error("a deferred gpio-in does not watch")
	}
	if _, err := d.Read(t.Context()); err == nil || !strings.Contains(err.Error(), "no bus") {
		t.Errorf("deferred read = %v, want the hardware error again", err)
	}
}
