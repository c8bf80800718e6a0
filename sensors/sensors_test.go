package sensors

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSimSensor(t *testing.T) {
	s, err := NewSensor(Spec{Name: "sim1", Type: "sim"})
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
	a, err := NewActuator(Spec{Name: "relay1", Type: "sim"})
	if err != nil {
		t.Fatal(err)
	}
	if a.State() != false {
		t.Error("relay does not start off")
	}
	if v, err := a.Set(context.Background(), true); err != nil || v != true || a.State() != true {
		t.Errorf("Set(true) = %v, %v", v, err)
	}
	for _, bad := range []any{"on", 1.0, nil, map[string]any{}} {
		_, err := a.Set(context.Background(), bad)
		if !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "relay1") {
			t.Errorf("Set(%v) = %v, want ErrBadValue naming relay1", bad, err)
		}
	}
	if a.State() != true {
		t.Error("a refused value changed the state")
	}
}

func TestUnknownKinds(t *testing.T) {
	if _, err := NewSensor(Spec{Name: "t", Type: "thermo"}); err == nil || !strings.Contains(err.Error(), `unknown type "thermo" (known: sim)`) {
		t.Errorf("NewSensor = %v", err)
	}
	if _, err := NewActuator(Spec{Name: "r", Type: "valve"}); err == nil || !strings.Contains(err.Error(), `unknown type "valve"`) {
		t.Errorf("NewActuator = %v", err)
	}
}

// flaky fails its second read.
type flaky struct {
	mu sync.Mutex
	n  int
}

func (f *flaky) Name() string { return "f" }
func (f *flaky) Type() string { return "test" }
func (f *flaky) Read(context.Context) (Values, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.n == 2 {
		return nil, errors.New("bus error")
	}
	return Values{"n": f.n}, nil
}

// TestSchedulerSeq: the first reading comes at once, seq counts successful
// readings, a failed read skips a number of nothing, and Run returns when
// ctx ends.
func TestSchedulerSeq(t *testing.T) {
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	sc := &Scheduler{Now: func() time.Time { return fixed }}
	sc.Add(&flaky{}, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Reading, 100)
	done := make(chan error)
	go func() {
		done <- sc.Run(ctx, func(r Reading) {
			select {
			case got <- r:
			default:
			}
		})
	}()
	for want := uint64(1); want <= 3; want++ {
		select {
		case r := <-got:
			if r.Seq != want || r.TS.Location() != time.UTC || !r.TS.Equal(fixed) {
				t.Errorf("reading %+v, want seq %d at %v UTC", r, want, fixed)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no reading within 5s")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
