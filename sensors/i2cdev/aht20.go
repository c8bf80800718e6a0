package i2cdev

import (
	"context"
	"fmt"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/aht20"
)

// AHT20 datasheet: fixed address 0x38; -40..85 °C, 0..100 %RH.
var aht20Chip = chip{
	kind:  "aht20",
	addrs: []uint16{0x38},
	keys:  []string{"temperature_c", "humidity_pct"},
	ranges: map[string]sensors.Range{
		"temperature_c": {Min: -40, Max: 85},
		"humidity_pct":  {Min: 0, Max: 100},
	},
}

type aht20Sensor struct {
	*device
	dev *aht20.Dev
}

// NewAHT20 is the "aht20" kind: temperature and humidity. The driver
// checks each reading's CRC.
func NewAHT20(s sensors.Spec) (sensors.Sensor, error) {
	var o busOptions
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	d, b, err := open(s, aht20Chip, o)
	if err != nil {
		return nil, err
	}
	opts := aht20.DefaultOpts
	dev, err := aht20.NewI2C(b, &opts)
	if err != nil {
		return nil, d.errorf("init: %w", err)
	}
	return &aht20Sensor{device: d, dev: dev}, nil
}

func (s *aht20Sensor) Read(ctx context.Context) (sensors.Values, error) {
	return s.read(ctx, func(context.Context) (sensors.Values, error) {
		var e physic.Env
		if err := s.dev.Sense(&e); err != nil {
			return nil, fmt.Errorf("read measurement: %w", err)
		}
		return sensors.Values{"temperature_c": celsius(e.Temperature), "humidity_pct": percentRH(e.Humidity)}, nil
	})
}
