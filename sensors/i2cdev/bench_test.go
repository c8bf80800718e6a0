//go:build unix

package i2cdev

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// The BenchmarkDecode* benchmarks time one Read against a Playback rewound
// to the same reading each iteration: bus bookkeeping, the driver's decode
// and compensation, rounding and the range check. Some periph drivers sleep
// for the chip's conversion time (AHT20 80 ms, BH1750 140 ms, BMx280 forced
// mode), which ns/op then shows as wall time; cpu-ns/op (getrusage, process
// CPU time over the loop) is the cost that matters on a Pi.

func benchRead(b *testing.B, kind string, opts map[string]any, init, read [][]i2ctest.IO) {
	bus := playback(append(init, read...)...)
	s, err := Kinds[kind](spec(kind, opts, envFor(bus, instantClock{})))
	if err != nil {
		b.Fatal(err)
	}
	start := bus.Count
	ctx := context.Background()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		bus.Lock()
		bus.Count = start
		bus.Unlock()
		if _, err := s.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkDecodeBME280(b *testing.B) {
	// Normal mode (filter set): a read is one burst, no driver sleep.
	benchRead(b, "bme280", map[string]any{"address": 0x76, "filter": 4}, [][]i2ctest.IO{bmeInitFiltered}, [][]i2ctest.IO{bmeData})
}

func BenchmarkDecodeBME280Forced(b *testing.B) {
	benchRead(b, "bme280", map[string]any{"address": 0x76, "temperature_oversampling": 1, "pressure_oversampling": 1, "humidity_oversampling": 1},
		[][]i2ctest.IO{bmeCalib, {{Addr: 0x76, W: []byte{0xf4, 0x24, 0xf2, 0x1, 0xf5, 0xa0, 0xf4, 0x24}}}},
		[][]i2ctest.IO{{{Addr: 0x76, W: []byte{0xf4, 0x25}}, {Addr: 0x76, W: []byte{0xf3}, R: []byte{0}}}, bmeData})
}

func BenchmarkDecodeBMP280(b *testing.B) {
	benchRead(b, "bmp280", map[string]any{"address": 0x76}, [][]i2ctest.IO{bmpInit}, [][]i2ctest.IO{bmeForced[:1], bmeForced[2:], bmpData})
}

func BenchmarkDecodeAHT20(b *testing.B) {
	benchRead(b, "aht20", nil, [][]i2ctest.IO{ahtInit}, [][]i2ctest.IO{ahtRead})
}

func BenchmarkDecodeMCP9808(b *testing.B) {
	benchRead(b, "mcp9808", nil, [][]i2ctest.IO{mcpInit}, [][]i2ctest.IO{mcpRead10})
}

func BenchmarkDecodeINA219(b *testing.B) {
	benchRead(b, "ina219", inaOpts, [][]i2ctest.IO{inaInit}, [][]i2ctest.IO{inaRead})
}

func BenchmarkDecodeSCD4x(b *testing.B) {
	benchRead(b, "scd4x", nil, [][]i2ctest.IO{scdInit}, [][]i2ctest.IO{scdRead})
}

func BenchmarkDecodeBH1750(b *testing.B) {
	benchRead(b, "bh1750", nil, [][]i2ctest.IO{bhInit}, [][]i2ctest.IO{bhRead})
}

func BenchmarkDecodeSHT3x(b *testing.B) {
	benchRead(b, "sht3x", nil, nil, [][]i2ctest.IO{sht3xRead(0x66, 0x66, 0x93, 0x66, 0x66, 0x93)})
}

// BenchmarkDecodeSHT3xPure is the CRC check and conversion alone.
func BenchmarkDecodeSHT3xPure(b *testing.B) {
	buf := [6]byte{0x66, 0x66, 0x93, 0x66, 0x66, 0x93}
	for b.Loop() {
		if _, _, err := decodeSHT3x(buf); err != nil {
			b.Fatal(err)
		}
	}
}

var _ sensors.Sensor = (*sht3xSensor)(nil)
