package sensors

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Scheduler samples each sensor on its own interval and hands readings to an
// emit function. The first reading of every sensor is taken at once, so the
// first telemetry does not wait a whole interval.
type Scheduler struct {
	Now    func() time.Time // injected clock for timestamps; nil means time.Now
	Logger *slog.Logger

	jobs []job
}

type job struct {
	s        Sensor
	interval time.Duration
}

// Add schedules s every interval. Call before Run.
func (sc *Scheduler) Add(s Sensor, interval time.Duration) {
	sc.jobs = append(sc.jobs, job{s, interval})
}

// Run samples until ctx ends, then returns nil once every sampler has
// stopped. emit is called from one goroutine per sensor; a failed read is
// logged and does not advance that sensor's seq.
func (sc *Scheduler) Run(ctx context.Context, emit func(Reading)) error {
	now := sc.Now
	if now == nil {
		now = time.Now
	}
	log := sc.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	for _, j := range sc.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("sensor", j.s.Name())
			t := time.NewTicker(j.interval)
			defer t.Stop()
			var seq uint64
			var failing bool
			for {
				v, err := j.s.Read(ctx)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					if !failing {
						l.Warn("sensor read failed", "err", err)
					}
					failing = true
				default:
					if failing {
						l.Info("sensor reads again")
					}
					failing = false
					seq++
					emit(Reading{TS: now().UTC(), Sensor: j.s.Name(), Type: j.s.Type(), Seq: seq, Values: v})
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
	return nil
}
