package sensors_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/agent/sensors"
	"github.com/edgeagent/agent/sensors/clocktest"
)

// flaky fails its second read.
type flaky struct {
	mu sync.Mutex
	n  int
}

func (f *flaky) Name() string { return "f" }
func (f *flaky) Type() string { return "test" }
func (f *flaky) Read(context.Context) (sensors.Values, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.n == 2 {
		return nil, errors.New("bus error")
	}
	return sensors.Values{"n": f.n}, nil
}

// collect runs sc and returns its readings through a channel.
func collect(t *testing.T, sc *sensors.Scheduler) (<-chan sensors.Reading, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan sensors.Reading, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sc.Run(ctx, func(r sensors.Reading) { got <- r })
	}()
	return got, func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

func next(t *testing.T, ch <-chan sensors.Reading) sensors.Reading {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no reading within 5s")
		return sensors.Reading{}
	}
}

// step fires the scheduler's next timer once it is armed (bounded poll:
// the scheduler arms it from its own goroutine).
func step(t *testing.T, clk *clocktest.Clock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.Timers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("scheduler armed no timer within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	clk.AdvanceToNext()
}

// TestSchedulerSeq: the first reading comes at once, seq counts successful
// readings, and a failure is reported with the number the reading would
// have had, without advancing seq.
func TestSchedulerSeq(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	clk := clocktest.New(t0)
	sc := &sensors.Scheduler{Clock: clk}
	sc.Add(&flaky{}, time.Second)
	got, stop := collect(t, sc)
	defer stop()
	want := []struct {
		seq uint64
		err bool
	}{{1, false}, {2, true}, {2, false}, {3, false}}
	for i, w := range want {
		step(t, clk)
		r := next(t, got)
		if r.Seq != w.seq || (r.Err != nil) != w.err || r.TS.Location() != time.UTC {
			t.Errorf("reading %d = %+v, want seq %d err %v (UTC)", i, r, w.seq, w.err)
		}
	}
}

// TestSchedulerLastSeq: numbering continues after the last seq a previous
// run used (kept by the store-and-forward log).
func TestSchedulerLastSeq(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	sc := &sensors.Scheduler{Clock: clk, LastSeq: func(name string) uint64 {
		if name == "f" {
			return 41
		}
		return 0
	}}
	sc.Add(&flaky{}, time.Second)
	got, stop := collect(t, sc)
	defer stop()
	step(t, clk)
	if r := next(t, got); r.Seq != 42 {
		t.Errorf("first reading seq %d, want 42", r.Seq)
	}
}

// slow takes work of fake time per read.
type slow struct {
	clk  *clocktest.Clock
	work time.Duration
}

func (s *slow) Name() string { return "slow" }
func (s *slow) Type() string { return "test" }
func (s *slow) Read(context.Context) (sensors.Values, error) {
	s.clk.Advance(s.work)
	return sensors.Values{}, nil
}

// TestSchedulerNoDrift: a sensor whose read takes 30 ms of a 100 ms
// interval is still read at start + k·100 ms, and one that overruns skips
// the slots it missed instead of bursting.
func TestSchedulerNoDrift(t *testing.T) {
	t0 := time.Unix(1000, 0)
	clk := clocktest.New(t0)
	sc := &sensors.Scheduler{Clock: clk}
	s := &slow{clk: clk, work: 30 * time.Millisecond}
	sc.Add(s, 100*time.Millisecond)
	got, stop := collect(t, sc)
	defer stop()
	for k := 0; k < 10; k++ {
		step(t, clk)
		r := next(t, got)
		if want := t0.Add(time.Duration(k)*100*time.Millisecond + 30*time.Millisecond); !r.TS.Equal(want) {
			t.Fatalf("reading %d at %v, want %v (drift)", k, r.TS.Sub(t0), want.Sub(t0))
		}
	}
	// One read overruns by 250 ms: the next comes at the next slot on the
	// grid, not three back to back.
	s.work = 250 * time.Millisecond
	step(t, clk)
	r := next(t, got)
	s.work = 0
	step(t, clk)
	r2 := next(t, got)
	if gap := r2.TS.Sub(r.TS); gap <= 0 || (r2.TS.Sub(t0))%(100*time.Millisecond) != 0 {
		t.Errorf("after an overrun: reading at %v, then %v; want the next slot on the 100 ms grid", r.TS.Sub(t0), r2.TS.Sub(t0))
	}
}

// broken always fails.
type broken struct{}

func (broken) Name() string                                 { return "b" }
func (broken) Type() string                                 { return "test" }
func (broken) Read(context.Context) (sensors.Values, error) { return nil, errors.New("NACK") }

// TestSchedulerBackoff: a failing sensor is retried at interval, 2×, 4×, …
// up to MaxBackoff, and each attempt reports one error.
func TestSchedulerBackoff(t *testing.T) {
	t0 := time.Unix(1000, 0)
	clk := clocktest.New(t0)
	sc := &sensors.Scheduler{Clock: clk, MaxBackoff: 4 * time.Second}
	sc.Add(broken{}, time.Second)
	got, stop := collect(t, sc)
	defer stop()
	var at []time.Duration
	for range 6 {
		step(t, clk)
		r := next(t, got)
		if r.Err == nil || r.Seq != 1 {
			t.Fatalf("reading %+v, want an error with seq 1", r)
		}
		at = append(at, r.TS.Sub(t0))
	}
	want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 11 * time.Second, 15 * time.Second}
	if !slices.Equal(at, want) {
		t.Errorf("attempts at %v, want %v", at, want)
	}
}

// hung never returns until its ctx ends.
type hung struct{}

func (hung) Name() string { return "hung" }
func (hung) Type() string { return "test" }
func (hung) Read(ctx context.Context) (sensors.Values, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestSchedulerIsolation: a sensor stuck on a hung bus does not delay the
// others (on the fake clock: the hung one never re-arms, the other keeps
// its schedule).
func TestSchedulerIsolation(t *testing.T) {
	t0 := time.Unix(1000, 0)
	clk := clocktest.New(t0)
	sc := &sensors.Scheduler{Clock: clk}
	sc.Add(hung{}, 100*time.Millisecond)
	f := &flaky{n: 10}
	sc.Add(f, 100*time.Millisecond)
	got, stop := collect(t, sc)
	defer stop()
	for k := 0; k < 5; {
		step(t, clk)
		if r := next(t, got); r.Sensor == "f" {
			if want := t0.Add(time.Duration(k) * 100 * time.Millisecond); !r.TS.Equal(want) {
				t.Fatalf("reading %d at %v, want %v", k, r.TS.Sub(t0), want.Sub(t0))
			}
			k++
		}
	}
}
