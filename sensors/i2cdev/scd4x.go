package i2cdev

import (
	"context"
	"fmt"
	"time"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/scd4x"
)

// From Sensirion's SCD4x datasheet.
var scd4xGetDataReady = []byte{0xe4, 0xb8} // section 3.9.2

const (
	// Periodic measurement yields a sample every 5 s; polling data-ready
	// each second finds it within a second of it landing.
	scd4xPoll = time.Second
	// Data ready when any of the word's low 11 bits is set.
	scd4xReadyMask = 0x07ff
)

// SCD4x datasheet: fixed address 0x62; CO₂ output range 0..40000 ppm,
// operating range -10..60 °C, 0..100 %RH.
var scd4xChip = chip{
	kind:  "scd4x",
	addrs: []uint16{scd4x.SensorAddress},
	keys:  []string{"co2_ppm", "temperature_c", "humidity_pct"},
	ranges: map[string]sensors.Range{
		"co2_ppm":       {Min: 0, Max: 40000},
		"temperature_c": {Min: -10, Max: 60},
		"humidity_pct":  {Min: 0, Max: 100},
	},
}

type scd4xSensor struct {
	*device
	dev *scd4x.Dev
	raw i2c.Dev
}

// NewSCD4x is the "scd4x" kind (SCD40/SCD41): CO₂, temperature and
// humidity. It starts periodic measurement; Close stops it.
func NewSCD4x(s sensors.Spec) (sensors.Sensor, error) {
	var o busOptions
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	d, b, err := open(s, scd4xChip, o)
	if err != nil {
		return nil, err
	}
	dev, err := scd4x.NewI2C(b, d.addr)
	if err != nil {
		return nil, d.errorf("start periodic measurement: %w", err)
	}
	return &scd4xSensor{device: d, dev: dev, raw: i2c.Dev{Bus: b, Addr: d.addr}}, nil
}

// Read waits, on the injected clock and honouring ctx, until the chip has
// a sample, then has the driver read it. The driver's own wait sleeps a
// second at a time for up to six, which ctx could not interrupt.
func (s *scd4xSensor) Read(ctx context.Context) (sensors.Values, error) {
	return s.read(ctx, func(ctx context.Context) (sensors.Values, error) {
		for {
			ready, err := s.dataReady()
			if err != nil {
				return nil, fmt.Errorf("get data-ready status: %w", err)
			}
			if ready {
				break
			}
			if err := wait(ctx, s.clock, scd4xPoll); err != nil {
				return nil, err
			}
		}
		var e scd4x.Env
		if err := s.dev.Sense(&e); err != nil {
			return nil, fmt.Errorf("read measurement: %w", err)
		}
		return sensors.Values{
			"co2_ppm":       float64(e.CO2),
			"temperature_c": celsius(e.Temperature),
			"humidity_pct":  percentRH(e.Humidity),
		}, nil
	})
}

func (s *scd4xSensor) dataReady() (bool, error) {
	var r [3]byte
	if err := s.raw.Tx(scd4xGetDataReady, r[:]); err != nil {
		return false, err
	}
	if got, want := r[2], crc8(r[:2]); got != want {
		return false, fmt.Errorf("%w on status word (got 0x%02x, want 0x%02x)", ErrCRC, got, want)
	}
	return (uint16(r[0])<<8|uint16(r[1]))&scd4xReadyMask != 0, nil
}

// Close stops periodic measurement (the driver then waits the datasheet's
// 500 ms before the chip takes commands again).
func (s *scd4xSensor) Close() error {
	return s.close(s.dev.Halt)
}
