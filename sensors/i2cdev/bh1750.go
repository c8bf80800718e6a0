package i2cdev

import (
	"context"
	"fmt"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bh1750"
)

type bh1750Options struct {
	busOptions
	// Resolution is "high" (1 lx, 120 ms), "high2" (0.5 lx, 120 ms) or
	// "low" (4 lx, 16 ms).
	Resolution string `toml:"resolution"`
}

// BH1750FVI datasheet: ADDR low 0x23, high 0x5c; range 1..65535 lx (a dark
// room reads 0).
var bh1750Chip = chip{
	kind:   "bh1750",
	addrs:  []uint16{bh1750.I2CAddr, bh1750.AlternativeI2CAddr},
	keys:   []string{"lux"},
	ranges: map[string]sensors.Range{"lux": {Min: 0, Max: 65535}},
}

type bh1750Sensor struct {
	*device
	dev *bh1750.Dev
	// div corrects the driver for high-resolution mode 2, whose count is
	// in half-lux steps but which periph scales like mode 1.
	div float64
}

// NewBH1750 is the "bh1750" kind: illuminance.
func NewBH1750(s sensors.Spec) (sensors.Sensor, error) {
	var o bh1750Options
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	res, div := bh1750.ContinuousHighResMode, 1.0
	switch o.Resolution {
	case "", "high":
	case "high2":
		res, div = bh1750.ContinuousHighResMode2, 2
	case "low":
		res = bh1750.ContinuousLowResMode
	default:
		return nil, optionErr(bh1750Chip.kind, "resolution", fmt.Sprintf("%q", o.Resolution), `"high", "high2", "low"`)
	}
	d, b, err := open(s, bh1750Chip, o.busOptions)
	if err != nil {
		return nil, err
	}
	dev, err := bh1750.NewI2C(b, d.addr)
	if err != nil {
		return nil, d.errorf("init: %w", err)
	}
	if res != bh1750.ContinuousHighResMode {
		if err := dev.SetResolution(res); err != nil {
			return nil, d.errorf("init: set resolution %s: %w", o.Resolution, err)
		}
	}
	return &bh1750Sensor{device: d, dev: dev, div: div}, nil
}

func (s *bh1750Sensor) Read(ctx context.Context) (sensors.Values, error) {
	return s.read(ctx, func(context.Context) (sensors.Values, error) {
		l, err := s.dev.Sense()
		if err != nil {
			return nil, fmt.Errorf("read measurement: %w", err)
		}
		return sensors.Values{"lux": round(float64(l)/float64(physic.Lumen)/s.div, 2)}, nil
	})
}
