package sensors

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
)

// simSensor is a simulated environment sensor: temperature and humidity
// taking a bounded random walk, seeded from the name so runs are repeatable.
type simSensor struct {
	name string
	mu   sync.Mutex
	rng  *rand.Rand
	t, h float64
}

// NewSimSensor is the "sim" sensor kind.
func NewSimSensor(s Spec) (Sensor, error) {
	if err := DecodeOptions(s, &struct{}{}); err != nil {
		return nil, err
	}
	f := fnv.New64a()
	f.Write([]byte(s.Name))
	return &simSensor{name: s.Name, rng: rand.New(rand.NewPCG(f.Sum64(), 1)), t: 21.5, h: 45}, nil
}

func (s *simSensor) Name() string   { return s.name }
func (s *simSensor) Type() string   { return "sim" }
func (s *simSensor) Keys() []string { return []string{"temperature_c", "humidity_pct"} }

func (s *simSensor) Read(ctx context.Context) (Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t = clamp(s.t+(s.rng.Float64()-0.5)*0.2, 15, 30)
	s.h = clamp(s.h+(s.rng.Float64()-0.5)*0.5, 20, 80)
	return Values{"temperature_c": round2(s.t), "humidity_pct": round2(s.h)}, nil
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
func round2(v float64) float64        { return math.Round(v*100) / 100 }

// simActuator is a simulated relay: a boolean that starts off.
type simActuator struct {
	name string
	mu   sync.Mutex
	on   bool
}

// NewSimActuator is the "sim" actuator kind: a relay.
func NewSimActuator(s Spec) (Actuator, error) {
	if err := DecodeOptions(s, &struct{}{}); err != nil {
		return nil, err
	}
	return &simActuator{name: s.Name}, nil
}

func (a *simActuator) Name() string { return a.name }
func (a *simActuator) Type() string { return "sim" }

func (a *simActuator) Set(ctx context.Context, v any) (any, error) {
	b, err := ParseSwitch(a.name, v)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.on = b
	return b, nil
}

func (a *simActuator) State() any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.on
}
