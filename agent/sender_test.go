package agent

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeagent/agent/agent/buffer"
	"github.com/edgeagent/agent/sensors"
)

// BenchmarkDrain is the sender's hot path in process: a backlog of 20 000
// readings in the log, drained to the real broker until every one is
// acknowledged. (make bench's agent-bench measures the built binary against
// mosquitto_pub; this one is for profiles: -cpuprofile.)
func BenchmarkDrain(b *testing.B) {
	const n = 20000
	e := newEnv(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "buf")
		lg, err := buffer.Open(buffer.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		for seq := uint64(1); seq <= n; seq++ {
			p := fmt.Sprintf(`{"ts":"2026-11-23T08:00:00.000Z","sensor":"sim1","type":"sim","seq":%d,"values":{"temperature_c":21.5,"humidity_pct":45.1}}`, seq)
			if _, err := lg.Append(buffer.Record{Topic: "edge/dev1/telemetry/sim1", Payload: []byte(p), Sensor: "sim1", Seq: seq}); err != nil {
				b.Fatal(err)
			}
		}
		if err := lg.Close(); err != nil {
			b.Fatal(err)
		}
		cfg := e.config("dev1", "")
		cfg.Buffer.Dir = dir
		b.StartTimer()
		r := e.startOpts(cfg, Options{})
		deadline := time.Now().Add(time.Minute)
		for r.d.buf == nil || r.d.buf.Stats().Depth > 0 {
			if time.Now().After(deadline) {
				b.Fatal("backlog not drained within a minute")
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		_ = r.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkEncodeReading is the hot path of every reading: its JSON, as
// publishReading makes it before appending it to the log.
func BenchmarkEncodeReading(b *testing.B) {
	ts := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	for b.Loop() {
		p, err := json.Marshal(telemetry{TS: stamp(ts), Sensor: "sim1", Type: "sim", Seq: 12345,
			Values: sensors.Values{"temperature_c": 21.5, "humidity_pct": 45.1}})
		if err != nil || len(p) == 0 {
			b.Fatal(err)
		}
	}
}
