package i2cdev

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// TestReadings plays each chip's recorded traffic and checks the decoded
// values against the figures periph's tests or the datasheet give for it.
func TestReadings(t *testing.T) {
	tests := []struct {
		name string
		kind string
		opts map[string]any
		ops  [][]i2ctest.IO
		want sensors.Values
	}{
		// periph: 23.72 °C, 100942.695 Pa, 65.30560 %RH.
		{"bme280 forced", "bme280", map[string]any{"address": 0x76}, [][]i2ctest.IO{bmeInit, bmeForced, bmeData},
			sensors.Values{"temperature_c": 23.72, "pressure_hpa": 1009.43, "humidity_pct": 65.31}},
		{"bme280 filtered normal mode", "bme280", map[string]any{"address": 0x76, "filter": 4}, [][]i2ctest.IO{bmeInitFiltered, bmeData},
			sensors.Values{"temperature_c": 23.72, "pressure_hpa": 1009.43, "humidity_pct": 65.31}},
		{"bmp280 no humidity", "bmp280", map[string]any{"address": 0x76}, [][]i2ctest.IO{bmpInit, bmeForced[:1], bmeForced[2:], bmpData},
			sensors.Values{"temperature_c": 23.72, "pressure_hpa": 1009.43}},
		// periph: 19.4458 °C, 45.82824 %RH.
		{"aht20", "aht20", nil, [][]i2ctest.IO{ahtInit, ahtRead},
			sensors.Values{"temperature_c": 19.45, "humidity_pct": 45.83}},
		{"mcp9808 10C", "mcp9808", nil, [][]i2ctest.IO{mcpInit, mcpRead10}, sensors.Values{"temperature_c": 10.0}},
		{"mcp9808 -10C", "mcp9808", nil, [][]i2ctest.IO{mcpInit, mcpReadMinus}, sensors.Values{"temperature_c": -10.0}},
		{"mcp9808 0.5C steps at 0x1f", "mcp9808", map[string]any{"address": 0x1f, "resolution_c": 0.5},
			[][]i2ctest.IO{{{Addr: 0x1f, W: []byte{0x08, 0x00}}, {Addr: 0x1f, W: []byte{0x01, 0x00, 0x00}}, {Addr: 0x1f, W: []byte{0x05}, R: []byte{0x00, 0xa0}}}},
			sensors.Values{"temperature_c": 10.0}},
		{"ina219 datasheet scale", "ina219", inaOpts, [][]i2ctest.IO{inaInit, inaRead},
			sensors.Values{"voltage_v": 11.98, "current_a": 10.0, "power_w": 119.8}},
		// periph: 556 ppm, count 0x670d → 25.446 °C, 0x4d08 → 30.091 %RH.
		{"scd4x", "scd4x", nil, [][]i2ctest.IO{scdInit, {scdNotReady}, scdRead, scdStop},
			sensors.Values{"co2_ppm": 556.0, "temperature_c": 25.45, "humidity_pct": 30.09}},
		// 33680 / 1.2 = 28066.67; periph truncates to whole lux.
		{"bh1750 datasheet example", "bh1750", nil, [][]i2ctest.IO{bhInit, bhRead}, sensors.Values{"lux": 28066.0}},
		{"bh1750 high2 halves", "bh1750", map[string]any{"resolution": "high2", "address": 0x5c},
			[][]i2ctest.IO{{{Addr: 0x5c, W: []byte{0x07}}, {Addr: 0x5c, W: []byte{0x10}}, {Addr: 0x5c, W: []byte{0x07}}, {Addr: 0x5c, W: []byte{0x11}},
				{Addr: 0x5c, W: []byte{0x11}}, {Addr: 0x5c, W: []byte{0x11}, R: []byte{0x83, 0x90}}}},
			sensors.Values{"lux": 14033.0}},
		// 0x6666 (CRC 0x93): -45 + 175·26214/65535 = 25.00 °C, 100·26214/65535 = 40.00 %RH.
		{"sht3x 25C 40%", "sht3x", nil, [][]i2ctest.IO{sht3xRead(0x66, 0x66, 0x93, 0x66, 0x66, 0x93)},
			sensors.Values{"temperature_c": 25.0, "humidity_pct": 40.0}},
		// The datasheet's CRC example: 0xBEEF → 0x92.
		{"sht3x datasheet CRC example", "sht3x", nil, [][]i2ctest.IO{sht3xRead(0xbe, 0xef, 0x92, 0xbe, 0xef, 0x92)},
			sensors.Values{"temperature_c": 85.52, "humidity_pct": 74.58}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := playback(tt.ops...)
			s, err := Kinds[tt.kind](spec(tt.kind, tt.opts, envFor(bus, instantClock{})))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := s.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("Read() = %v, want %v", got, tt.want)
			}
			keys := s.(sensors.Keyed).Keys()
			if gotKeys := slices.Sorted(maps.Keys(got)); !slices.Equal(gotKeys, slices.Sorted(slices.Values(keys))) {
				t.Errorf("Read() keys %v, Keys() says %v", gotKeys, keys)
			}
			if s.Type() != tt.kind || s.Name() != "test-"+tt.kind {
				t.Errorf("Type(), Name() = %q, %q", s.Type(), s.Name())
			}
			if c, ok := s.(sensors.Closer); ok {
				if err := c.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
			mustClose(t, bus)
		})
	}
}

// TestErrors checks each refusal names what failed and wraps its cause.
func TestErrors(t *testing.T) {
	errNoSuchBus := errors.New("open /dev/i2c-1: no such file or directory")
	tests := []struct {
		name string
		kind string
		opts map[string]any
		ops  [][]i2ctest.IO
		env  func(*sensors.Env) *sensors.Env
		// read: the error comes from Read, not the constructor.
		read bool
		is   error
		// want are substrings of the message.
		want []string
	}{
		// Options.
		{name: "unknown option", kind: "bme280", opts: map[string]any{"adress": 0x76}, is: sensors.ErrOption, want: []string{`unknown option "adress"`}},
		{name: "humidity on bmp280", kind: "bmp280", opts: map[string]any{"humidity_oversampling": 2}, is: sensors.ErrOption, want: []string{`"humidity_oversampling"`}},
		{name: "bus required", kind: "sht3x", opts: map[string]any{"bus": ""}, is: sensors.ErrOption, want: []string{"bus is required"}},
		{name: "address beyond 7 bits", kind: "sht3x", opts: map[string]any{"address": 0x80}, is: sensors.ErrOption, want: []string{"sht3x on /dev/i2c-1", "0x80", "0x03..0x77", "0x44, 0x45"}},
		{name: "address zero", kind: "ina219", opts: map[string]any{"address": 0}, is: sensors.ErrOption, want: []string{"0x0 ", "0x03..0x77"}},
		{name: "address not the chip's", kind: "bme280", opts: map[string]any{"address": 0x40}, is: sensors.ErrOption, want: []string{"0x40", "allowed: 0x76, 0x77"}},
		{name: "aht20 fixed address", kind: "aht20", opts: map[string]any{"address": 0x39}, is: sensors.ErrOption, want: []string{"allowed: 0x38"}},
		{name: "oversampling", kind: "bme280", opts: map[string]any{"pressure_oversampling": 3}, is: sensors.ErrOption, want: []string{"pressure_oversampling = 3", "1, 2, 4, 8, 16"}},
		{name: "oversampling wrong type", kind: "bme280", opts: map[string]any{"temperature_oversampling": "4x"}, is: sensors.ErrOption, want: []string{"temperature_oversampling"}},
		{name: "filter", kind: "bmp280", opts: map[string]any{"filter": 5}, is: sensors.ErrOption, want: []string{"filter = 5", "0 (off), 2, 4, 8, 16"}},
		{name: "mcp9808 resolution", kind: "mcp9808", opts: map[string]any{"resolution_c": 0.1}, is: sensors.ErrOption, want: []string{"resolution_c = 0.1", "0.0625, 0.125, 0.25, 0.5"}},
		{name: "bh1750 resolution", kind: "bh1750", opts: map[string]any{"resolution": "max"}, is: sensors.ErrOption, want: []string{`resolution = "max"`, `"high", "high2", "low"`}},
		{name: "ina219 shunt", kind: "ina219", opts: map[string]any{"shunt_ohms": 0.0}, is: sensors.ErrOption, want: []string{"shunt_ohms = 0", "> 0"}},
		{name: "ina219 beyond shunt range", kind: "ina219", opts: map[string]any{"shunt_ohms": 0.1, "max_current_a": 10.0}, is: sensors.ErrOption, want: []string{"max_current_a × shunt_ohms = 1 V", "0.32 V"}},
		{name: "ina219 calibration overflow", kind: "ina219", opts: map[string]any{"shunt_ohms": 0.001, "max_current_a": 1.0}, is: sensors.ErrOption, want: []string{"0.02048"}},

		// The bus.
		{name: "missing bus", kind: "bme280", env: func(e *sensors.Env) *sensors.Env {
			e.I2C = func(string) (i2c.Bus, error) { return nil, errNoSuchBus }
			return e
		}, is: errNoSuchBus, want: []string{"bme280 on /dev/i2c-1 at 0x76: open bus: open /dev/i2c-1"}},
		{name: "unknown bus name", kind: "sht3x", opts: map[string]any{"bus": "7"}, want: []string{"sht3x on 7 at 0x44: open bus: no such bus 7"}},
		{name: "nil Env", kind: "scd4x", env: func(*sensors.Env) *sensors.Env { return nil }, is: ErrNoBus, want: []string{"scd4x on /dev/i2c-1 at 0x62: open bus"}},
		{name: "nil Env.I2C", kind: "aht20", env: func(e *sensors.Env) *sensors.Env { e.I2C = nil; return e }, is: ErrNoBus},

		// NACKs: the chip stops answering (the playback runs dry).
		{name: "bme280 init NACK", kind: "bme280", want: []string{"bme280 on /dev/i2c-1 at 0x76: init: ", "i2ctest"}},
		{name: "bme280 read NACK", kind: "bme280", ops: [][]i2ctest.IO{bmeInit}, read: true, want: []string{"bme280 on /dev/i2c-1 at 0x76: read measurement: "}},
		{name: "bmp280 read NACK", kind: "bmp280", ops: [][]i2ctest.IO{bmpInit, bmeForced[:1], bmeForced[2:]}, read: true, want: []string{"bmp280 on /dev/i2c-1 at 0x76: read measurement: "}},
		{name: "aht20 init NACK", kind: "aht20", want: []string{"aht20 on /dev/i2c-1 at 0x38: init: "}},
		{name: "aht20 read NACK", kind: "aht20", ops: [][]i2ctest.IO{ahtInit, ahtRead[:1]}, read: true, want: []string{"aht20 on /dev/i2c-1 at 0x38: read measurement: "}},
		{name: "mcp9808 read NACK", kind: "mcp9808", ops: [][]i2ctest.IO{mcpInit}, read: true, want: []string{"mcp9808 on /dev/i2c-1 at 0x18: read measurement: failed to read ambient temperature"}},
		{name: "ina219 init NACK", kind: "ina219", want: []string{"ina219 on /dev/i2c-1 at 0x40: init: "}},
		{name: "ina219 read NACK", kind: "ina219", ops: [][]i2ctest.IO{inaInitDefault}, read: true, want: []string{"ina219 on /dev/i2c-1 at 0x40: read measurement: failed to read shunt voltage"}},
		{name: "scd4x read NACK", kind: "scd4x", ops: [][]i2ctest.IO{scdInit}, read: true, want: []string{"scd4x on /dev/i2c-1 at 0x62: get data-ready status: "}},
		{name: "bh1750 init NACK", kind: "bh1750", want: []string{"bh1750 on /dev/i2c-1 at 0x23: init: "}},
		{name: "bh1750 read NACK", kind: "bh1750", ops: [][]i2ctest.IO{bhInit, bhRead[:1]}, read: true, want: []string{"bh1750 on /dev/i2c-1 at 0x23: read measurement: "}},
		{name: "sht3x start NACK", kind: "sht3x", read: true, want: []string{"sht3x on /dev/i2c-1 at 0x44: start measurement: "}},
		{name: "sht3x read NACK", kind: "sht3x", ops: [][]i2ctest.IO{sht3xRead()[:1]}, read: true, want: []string{"sht3x on /dev/i2c-1 at 0x44: read measurement: "}},

		// Wrong chip.
		{name: "bme280 is a bmp280", kind: "bme280", ops: [][]i2ctest.IO{bmpInit}, is: nil, want: []string{"chip reports itself as BMP280, not BME280", `type = "bmp280"`}},

		// CRC.
		{name: "sht3x temperature CRC", kind: "sht3x", ops: [][]i2ctest.IO{sht3xRead(0x66, 0x66, 0x94, 0x66, 0x66, 0x93)}, read: true, is: ErrCRC,
			want: []string{"sht3x on /dev/i2c-1 at 0x44: read measurement: CRC mismatch on temperature word (got 0x94, want 0x93)"}},
		{name: "sht3x humidity CRC", kind: "sht3x", ops: [][]i2ctest.IO{sht3xRead(0x66, 0x66, 0x93, 0x66, 0x66, 0x00)}, read: true, is: ErrCRC,
			want: []string{"read measurement: CRC mismatch on humidity word (got 0x00, want 0x93)"}},
		{name: "aht20 CRC", kind: "aht20", ops: [][]i2ctest.IO{ahtInit, ahtRead[:1], {{Addr: 0x38, R: []byte{0x18, 0x75, 0x52, 0x05, 0x8e, 0x40, 0x7e}}}}, read: true,
			want: []string{"aht20 on /dev/i2c-1 at 0x38: read measurement: ", "CRC8"}},
		{name: "scd4x status CRC", kind: "scd4x", ops: [][]i2ctest.IO{scdInit, {{Addr: 0x62, W: []byte{0xe4, 0xb8}, R: []byte{0x80, 0x06, 0x05}}}}, read: true, is: ErrCRC,
			want: []string{"get data-ready status: CRC mismatch on status word (got 0x05, want 0x04)"}},

		// Out of the datasheet's range.
		{name: "sht3x -45C", kind: "sht3x", ops: [][]i2ctest.IO{sht3xRead(0x00, 0x00, 0x81, 0x66, 0x66, 0x93)}, read: true, is: sensors.ErrOutOfRange,
			want: []string{"sht3x on /dev/i2c-1 at 0x44: out of range: temperature_c = -45"}},
		{name: "mcp9808 127C", kind: "mcp9808", ops: [][]i2ctest.IO{mcpInit, {{Addr: 0x18, W: []byte{0x05}, R: []byte{0x07, 0xf0}}}}, read: true, is: sensors.ErrOutOfRange,
			want: []string{"temperature_c = 127"}},
		{name: "ina219 32.76V", kind: "ina219", opts: inaOpts, ops: [][]i2ctest.IO{inaInit, inaRead[:1], {{Addr: 0x40, W: []byte{0x02}, R: []byte{0xff, 0xf8}}}, inaRead[2:]}, read: true, is: sensors.ErrOutOfRange,
			want: []string{"voltage_v = 32.76", "0..26"}},
		// Count 0xa000 (CRC 0x7e): -45 + 175·40960/65535 = 64.38 °C, above the SCD4x's 60.
		{name: "scd4x 64C", kind: "scd4x", ops: [][]i2ctest.IO{scdInit, scdRead[:2], {{Addr: 0x62, W: []byte{0xec, 0x05}, R: []byte{0x02, 0x2c, 0xa3, 0xa0, 0x00, 0x7e, 0x4d, 0x08, 0xf1}}}}, read: true, is: sensors.ErrOutOfRange,
			want: []string{"temperature_c = 64.38", "-10..60"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := playback(tt.ops...)
			env := envFor(bus, instantClock{})
			if tt.env != nil {
				env = tt.env(env)
			}
			s, err := Kinds[tt.kind](spec(tt.kind, tt.opts, env))
			if tt.read {
				if err != nil {
					t.Fatalf("constructor: %v", err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var v sensors.Values
				v, err = s.Read(ctx)
				if err == nil {
					t.Fatalf("Read() = %v, want an error", v)
				}
			} else if err == nil {
				t.Fatal("constructor succeeded, want an error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %q", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
