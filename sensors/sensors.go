// Package sensors holds what the agent reads and what it switches: the Sensor
// and Actuator interfaces, the Scheduler that samples sensors on their
// intervals, and the kinds built from config (only "sim" so far; GPIO and I2C
// kinds come through periph.io's interfaces so their tests use periph's fakes).
//
//	s, _ := sensors.NewSensor(sensors.Spec{Name: "sim1", Type: "sim"})
//	sched := &sensors.Scheduler{Now: time.Now}
//	sched.Add(s, 200*time.Millisecond)
//	sched.Run(ctx, func(r sensors.Reading) { publish(r) })
package sensors

import (
	"context"
	"errors"
)

// Values are one reading's measurements, keyed with the unit in the name
// ("temperature_c", "humidity_pct", "level").
type Values map[string]any

// Sensor is something the agent samples.
type Sensor interface {
	Name() string
	Type() string
	// Read samples now. It must honour ctx and be safe to call from the
	// scheduler and from a "read" command concurrently.
	Read(ctx context.Context) (Values, error)
}

// Actuator is something the agent switches.
type Actuator interface {
	Name() string
	Type() string
	// Set validates v and applies it, returning the state now in force. A
	// value of the wrong type or range returns an error wrapping ErrBadValue
	// and changes nothing.
	Set(ctx context.Context, v any) (any, error)
	// State returns the value in force.
	State() any
}

// ErrBadValue is wrapped by Set errors about the requested value.
var ErrBadValue = errors.New("bad value")
