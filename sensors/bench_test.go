package sensors_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/agent/sensors"
)

// quick reads at once.
type quick struct{ name string }

func (q quick) Name() string                                 { return q.name }
func (q quick) Type() string                                 { return "bench" }
func (q quick) Read(context.Context) (sensors.Values, error) { return sensors.Values{"x": 1.0}, nil }

// BenchmarkSchedulerJitter runs 10 sensors at 10 Hz on the wall clock for
// b.N × 100 ms and reports how late readings come against their slots
// (start + k·100 ms): p50, p99 and max, in µs. The reference is the same
// measurement for ten bare time.Tickers at 10 Hz in ten goroutines, in the
// same run: the floor that Go's timers and this machine's two cores set.
func BenchmarkSchedulerJitter(b *testing.B) {
	const interval = 100 * time.Millisecond
	b.Run("scheduler_10x10Hz", func(b *testing.B) {
		sc := &sensors.Scheduler{}
		for i := range 10 {
			sc.Add(quick{name: string(rune('a' + i))}, interval)
		}
		var mu sync.Mutex
		first := map[string]time.Time{}
		var lates []time.Duration
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = sc.Run(ctx, func(r sensors.Reading) {
				mu.Lock()
				defer mu.Unlock()
				t0, ok := first[r.Sensor]
				if !ok {
					first[r.Sensor] = r.TS
					return
				}
				slot := t0.Add(time.Duration(r.Seq-1) * interval)
				lates = append(lates, r.TS.Sub(slot))
			})
		}()
		time.Sleep(time.Duration(b.N) * interval) // the benchmark's measuring window
		cancel()
		<-done
		report(b, lates)
	})
	b.Run("10_time_Tickers_10Hz", func(b *testing.B) {
		var mu sync.Mutex
		var lates []time.Duration
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.NewTicker(interval)
				defer t.Stop()
				t0 := time.Now()
				for k := 1; k <= b.N; k++ {
					<-t.C
					mu.Lock()
					lates = append(lates, time.Since(t0.Add(time.Duration(k)*interval)))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		report(b, lates)
	})
}

func report(b *testing.B, lates []time.Duration) {
	if len(lates) == 0 {
		b.ReportMetric(0, "ns/op")
		return
	}
	slices.Sort(lates)
	q := func(p float64) float64 { return float64(lates[int(p*float64(len(lates)-1))].Microseconds()) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(q(0.5), "µs-late-p50")
	b.ReportMetric(q(0.99), "µs-late-p99")
	b.ReportMetric(float64(lates[len(lates)-1].Microseconds()), "µs-late-max")
}
