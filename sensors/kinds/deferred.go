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

// lazy builds a kind on first use and retries until it succeeds: the one
// mechanism behind DeferredSensor and DeferredActuator.
type lazy[T any] struct {
	spec  sensors.Spec
	build func(sensors.Spec) (T, error)
	mu    sync.Mutex
	v     T
	built bool
}

// get returns the built kind, building it now if it is not yet.
func (l *lazy[T]) get() (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.built {
		v, err := l.build(l.spec)
		if err != nil {
			return v, err
		}
		l.v, l.built = v, true
	}
	return l.v, nil
}

// peek returns the kind if it is built, without trying.
func (l *lazy[T]) peek() (T, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v, l.built
}

func (l *lazy[T]) Name() string { return l.spec.Name }
func (l *lazy[T]) Type() string { return l.spec.Type }

// Close closes the built kind, if it was built and has something to close.
func (l *lazy[T]) Close() error {
	if v, ok := l.peek(); ok {
		if c, ok := any(v).(sensors.Closer); ok {
			return c.Close()
		}
	}
	return nil
}

// DeferredSensor stands in for a sensor whose hardware was absent at
// start: each Read tries to build it again (the scheduler's backoff paces
// the tries) and then reads it, so a board that gains its bus or device
// later starts reporting without a restart.
//
// Only a type that watches (gpio-in) gets a deferred Watch, and its Keys
// are the type's, known without the hardware, so Home Assistant keeps the
// entity of a sensor that is missing at start.
func DeferredSensor(spec sensors.Spec) sensors.Sensor {
	d := &deferredSensor{lazy[sensors.Sensor]{spec: spec, build: NewSensor}}
	if spec.Type == "gpio-in" {
		return &deferredWatcher{d}
	}
	return d
}

type deferredSensor struct{ lazy[sensors.Sensor] }

// deferredWatcher is a deferred sensor whose built form is a Watcher.
type deferredWatcher struct{ *deferredSensor }

func (d *deferredSensor) Read(ctx context.Context) (sensors.Values, error) {
	s, err := d.get()
	if err != nil {
		return nil, err
	}
	return s.Read(ctx)
}

// Keys are the built sensor's, or else the type's.
func (d *deferredSensor) Keys() []string {
	if s, ok := d.peek(); ok {
		if k, ok := s.(sensors.Keyed); ok {
			return k.Keys()
		}
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

// DeferredActuator stands in for an actuator whose hardware was absent at
// start: each Set tries to build it again. Its state is nil until built.
func DeferredActuator(spec sensors.Spec) sensors.Actuator {
	return &deferredActuator{lazy[sensors.Actuator]{spec: spec, build: NewActuator}}
}

type deferredActuator struct{ lazy[sensors.Actuator] }

func (d *deferredActuator) Set(ctx context.Context, v any) (any, error) {
	a, err := d.get()
	if err != nil {
		return nil, err
	}
	return a.Set(ctx, v)
}

func (d *deferredActuator) State() any {
	if a, ok := d.peek(); ok {
		return a.State()
	}
	return nil
}
