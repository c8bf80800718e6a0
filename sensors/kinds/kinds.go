// Package kinds maps the config's `type` names to the sensor and actuator
// kinds in the sensors packages: the one place that knows them all.
package kinds

import (
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/edgeagent/agent/sensors"
	"github.com/edgeagent/agent/sensors/gpio"
	"github.com/edgeagent/agent/sensors/i2cdev"
	"github.com/edgeagent/agent/sensors/sysfs"
)

var sensorKinds, actuatorKinds = build()

func build() (map[string]func(sensors.Spec) (sensors.Sensor, error), map[string]func(sensors.Spec) (sensors.Actuator, error)) {
	ss := map[string]func(sensors.Spec) (sensors.Sensor, error){"sim": sensors.NewSimSensor}
	as := map[string]func(sensors.Spec) (sensors.Actuator, error){"sim": sensors.NewSimActuator}
	for _, m := range []map[string]func(sensors.Spec) (sensors.Sensor, error){i2cdev.Kinds, gpio.Sensors, sysfs.Sensors} {
		maps.Copy(ss, m)
	}
	for _, m := range []map[string]func(sensors.Spec) (sensors.Actuator, error){gpio.Actuators, sysfs.Actuators} {
		maps.Copy(as, m)
	}
	return ss, as
}

// SensorTypes and ActuatorTypes list the known type names.
func SensorTypes() string   { return keys(sensorKinds) }
func ActuatorTypes() string { return keys(actuatorKinds) }

// NewSensor builds the sensor kind named by s.Type.
func NewSensor(s sensors.Spec) (sensors.Sensor, error) {
	mk, ok := sensorKinds[s.Type]
	if !ok {
		return nil, fmt.Errorf("sensor %q: %w %q (known: %s)", s.Name, ErrUnknownType, s.Type, keys(sensorKinds))
	}
	x, err := mk(s)
	if err != nil {
		return nil, fmt.Errorf("sensor %q (type %s): %w", s.Name, s.Type, err)
	}
	return x, nil
}

// NewActuator builds the actuator kind named by s.Type.
func NewActuator(s sensors.Spec) (sensors.Actuator, error) {
	mk, ok := actuatorKinds[s.Type]
	if !ok {
		return nil, fmt.Errorf("actuator %q: %w %q (known: %s)", s.Name, ErrUnknownType, s.Type, keys(actuatorKinds))
	}
	x, err := mk(s)
	if err != nil {
		return nil, fmt.Errorf("actuator %q (type %s): %w", s.Name, s.Type, err)
	}
	return x, nil
}

func keys[V any](m map[string]V) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}
