package kinds

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/edgeagent/agent/sensors"
	"github.com/edgeagent/agent/sensors/i2cdev"
)

// ErrUnknownType is wrapped when the config names a type that does not exist.
var ErrUnknownType = errors.New("unknown type")

// IsConfigError reports whether building a kind failed because of the
// config (a fix in the file), rather than because the hardware is absent
// or not answering (which may come right: the agent runs on and retries).
func IsConfigError(err error) bool {
	return errors.Is(err, sensors.ErrOption) || errors.Is(err, ErrUnknownType)
}

// DeferredSensor stands in for a sensor whose hardware was absent at
// start: each Read tries to build it again (the scheduler's backoff paces
// the tries) and then reads it, so a board that gains its bus or device
// later starts reporting without a restart.
//
// Only a type that watches (gpio-in) gets a deferred Watch, and its Keys
// are the type's, known without the hardware, so Home Assistant keeps the
// entity of a sensor that is missing at start.
func DeferredSensor(spec sensors.Spec, cause error) sensors.Sensor {
	d := &deferredSensor{spec: spec, err: cause}
	if spec.Type == "gpio-in" {
		return &deferredWatcher{d}
	}
	return d
}

// deferredWatcher is a deferred sensor whose built form is a Watcher.
type deferredWatcher struct{ *deferredSensor }

type deferredSensor struct {
	spec sensors.Spec
	mu   sync.Mutex
	s    sensors.Sensor
	err  error
}

func (d *deferredSensor) Name() string { return d.spec.Name }
func (d *deferredSensor) Type() string { return d.spec.Type }

func (d *deferredSensor) get() (sensors.Sensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s == nil {
		s, err := NewSensor(d.spec)
		if err != nil {
			d.err = err
			return nil, err
		}
		d.s = s
	}
	return d.s, nil
}

func (d *deferredSensor) Read(ctx context.Context) (sensors.Values, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.Read(ctx)
}

// Keys are the built sensor's, or else the type's.
func (d *deferredSensor) Keys() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if k, ok := d.s.(sensors.Keyed); ok {
		return k.Keys()
	}
	return typeKeys(d.spec.Type)
}

// typeKeys are the value keys of a type, known without its hardware.
func typeKeys(typ string) []string {
	if typ == "gpio-in" {
		return []string{"level"}
	}
	return i2cdev.KeysOf(typ)
}

// Watch waits for the sensor to be built (trying every 5 s) and then
// watches it.
func (d *deferredWatcher) Watch(ctx context.Context, emit func(sensors.Values)) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if s, err := d.get(); err == nil {
			if w, ok := s.(sensors.Watcher); ok {
				return w.Watch(ctx, emit)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *deferredSensor) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.s.(sensors.Closer); ok {
		return c.Close()
	}
	return nil
}

// DeferredActuator stands in for an actuator whose hardware was absent at
// start: each Set tries to build it again. Its state is nil until built.
func DeferredActuator(spec sensors.Spec, cause error) sensors.Actuator {
	return &deferredActuator{spec: spec, err: cause}
}

type deferredActuator struct {
	spec sensors.Spec
	mu   sync.Mutex
	a    sensors.Actuator
	err  error
}

func (d *deferredActuator) Name() string { return d.spec.Name }
func (d *deferredActuator) Type() string { return d.spec.Type }

func (d *deferredActuator) Set(ctx context.Context, v any) (any, error) {
	d.mu.Lock()
	if d.a == nil {
		a, err := NewActuator(d.spec)
		if err != nil {
			d.err = err
			d.mu.Unlock()
			return nil, err
		}
		d.a = a
	}
	a := d.a
	d.mu.Unlock()
	return a.Set(ctx, v)
}

func (d *deferredActuator) State() any {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.a == nil {
		return nil
	}
	return d.a.State()
}

func (d *deferredActuator) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.a.(sensors.Closer); ok {
		return c.Close()
	}
	return nil
}
