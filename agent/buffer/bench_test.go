package buffer

import (
	"bytes"
	"testing"
	"time"
)

// telemetry is a 150-byte payload, the size of a typical reading.
var telemetry = func() []byte {
	b := []byte(`{"sensor":"bme280","t":21.53,"h":48.2,"p":1013.2,"seq":123456,"ts":"2026-03-01T12:00:00.000Z","board":"edge-0042"`)
	b = append(b, bytes.Repeat([]byte(" "), 150-len(b)-1)...)
	return append(b, '}')
}()

func benchRecord(i int) Record {
	return Record{Topic: "edge/edge-0042/telemetry/bme280", Payload: telemetry, Sensor: "bme280", Seq: uint64(i)}
}

func BenchmarkAppend(b *testing.B) {
	for _, policy := range []SyncPolicy{SyncNever, SyncBatch, SyncAlways} {
		b.Run(string(policy), func(b *testing.B) {
			// MaxBytes bounds the disk used; old segments are dropped.
			l := openT(b, Options{Dir: b.TempDir(), MaxBytes: 64 << 20, Sync: policy})
			b.SetBytes(int64(len(telemetry)))
			b.ReportAllocs()
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				if _, err := l.Append(benchRecord(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}

func BenchmarkRead(b *testing.B) {
	const n = 100_000
	l := openT(b, Options{Dir: b.TempDir(), MaxBytes: 64 << 20, Sync: SyncNever})
	for i := 0; i < n; i++ {
		if _, err := l.Append(benchRecord(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(telemetry)))
	b.ReportAllocs()
	next := uint64(1)
	read := 0
	start := time.Now()
	for b.Loop() {
		// One entry per iteration, in batches of 64 as a sender reads.
		if read%64 == 0 {
			if next > n {
				next = 1
			}
			es, err := l.Read(next, 64)
			if err != nil || len(es) == 0 {
				b.Fatalf("Read(%d) = %d entries, %v", next, len(es), err)
			}
			next = es[len(es)-1].Offset + 1
		}
		read++
	}
	b.ReportMetric(float64(read)/time.Since(start).Seconds(), "records/s")
}
