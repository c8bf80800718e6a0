package sensors

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Scheduler samples each sensor on its own interval and hands readings to an
// emit function.
//
//   - The first reading of every sensor is taken at once, so the first
//     telemetry does not wait a whole interval.
//   - Each sensor runs in its own goroutine, on its own schedule: a slow or
//     failing sensor never delays the others. Readings are due at
//     start + k·interval (no drift); a read that overruns skips the slots it
//     missed rather than bursting to catch up.
//   - A failing sensor is retried with backoff (the interval doubling up to
//     MaxBackoff); each failed attempt emits one Reading with Err set, so an
//     error is reported at most once per backoff step, and the log says when
//     a sensor starts and stops failing, not every time.
//   - Sensors that are Watchers (a GPIO input's edges) also report on their
//     own; their events share the sensor's seq.
type Scheduler struct {
	Clock  Clock // nil is the wall clock
	Logger *slog.Logger
	// MaxBackoff caps the retry delay of a failing sensor (0: 5 minutes).
	MaxBackoff time.Duration
	// LastSeq returns the last seq a sensor used before this run (a
	// previous process's, kept by the store-and-forward log), so numbering
	// continues with no reuse; nil starts every sensor at 1.
	LastSeq func(sensor string) uint64

	jobs []job
}

type job struct {
	s        Sensor
	interval time.Duration
}

// Reading is one sample of one sensor, or its failure.
type Reading struct {
	TS     time.Time
	Sensor string
	Type   string
	Seq    uint64 // this sensor's readings from 1 (or LastSeq+1), +1 each; a failure carries the number the reading would have had
	Values Values
	Err    error // the read failed; Values is nil
}

// Add schedules s every interval (at least a millisecond). Call before Run.
func (sc *Scheduler) Add(s Sensor, interval time.Duration) {
	sc.jobs = append(sc.jobs, job{s, max(interval, time.Millisecond)})
}

// Run samples until ctx ends, then returns nil once every sampler has
// stopped. emit is called from the sensors' goroutines.
func (sc *Scheduler) Run(ctx context.Context, emit func(Reading)) error {
	clock := sc.Clock
	if clock == nil {
		clock = RealClock{}
	}
	log := sc.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxBackoff := sc.MaxBackoff
	if maxBackoff == 0 {
		maxBackoff = 5 * time.Minute
	}
	var wg sync.WaitGroup
	for _, j := range sc.jobs {
		r := &runner{j: j, clock: clock, log: log.With("sensor", j.s.Name()), emit: emit, maxBackoff: maxBackoff}
		if sc.LastSeq != nil {
			r.seq = sc.LastSeq(j.s.Name())
		}
		wg.Add(1)
		go func() { defer wg.Done(); r.poll(ctx) }()
		if w, ok := j.s.(Watcher); ok {
			wg.Add(1)
			go func() { defer wg.Done(); r.watch(ctx, w) }()
		}
	}
	wg.Wait()
	return nil
}

// runner is one sensor's sampling state.
type runner struct {
	j          job
	clock      Clock
	log        *slog.Logger
	emit       func(Reading)
	maxBackoff time.Duration

	mu      sync.Mutex // held from numbering a reading through its emit, so seq goes out in order
	seq     uint64
	failing bool
}

func (r *runner) poll(ctx context.Context) {
	interval := r.j.interval
	next := r.clock.Now()
	backoff := time.Duration(0)
	t := r.clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		v, err := r.read(ctx)
		if ctx.Err() != nil {
			return
		}
		now := r.clock.Now()
		if err != nil {
			r.report(nil, err)
			// Retry with backoff from now; the regular schedule resumes
			// from the next success.
			if backoff == 0 {
				backoff = interval
			} else {
				backoff = min(2*backoff, max(r.maxBackoff, interval))
			}
			next = now.Add(backoff)
		} else {
			backoff = 0
			r.report(v, nil)
			next = next.Add(interval)
			if !next.After(now) { // overran: skip the missed slots, no burst
				missed := now.Sub(next)/interval + 1
				next = next.Add(missed * interval)
			}
		}
		// Measured again: emit (a publish waiting for its PUBACK) took time.
		t.Reset(next.Sub(r.clock.Now()))
	}
}

// read samples once, bounded so a hung bus cannot stall this sensor for
// ever (the other sensors run on regardless). The bound leaves room for
// slow chips (an SCD4x waits up to 5 s for its next sample).
func (r *runner) read(ctx context.Context) (Values, error) {
	limit := max(2*r.j.interval, 10*time.Second)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return r.j.s.Read(ctx)
}

func (r *runner) watch(ctx context.Context, w Watcher) {
	err := w.Watch(ctx, func(v Values) { r.report(v, nil) })
	if err != nil && ctx.Err() == nil {
		r.log.Warn("sensor stopped watching; it is still sampled every interval", "err", err)
	}
}

// report emits a reading or a failure and logs state changes.
func (r *runner) report(v Values, err error) {
	r.mu.Lock() // released after emit (deferred below)
	rd := Reading{TS: r.clock.Now().UTC(), Sensor: r.j.s.Name(), Type: r.j.s.Type(), Seq: r.seq + 1, Values: v, Err: err}
	switch {
	case err != nil && !r.failing:
		r.failing = true
		r.log.Warn("sensor read failed; retrying with backoff", "err", err)
	case err == nil && r.failing:
		r.failing = false
		r.log.Info("sensor reads again")
	}
	if err == nil {
		r.seq++
	}
	defer r.mu.Unlock()
	r.emit(rd)
}
