package i2cdev

import (
	"context"
	"fmt"
	"math"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ina219"
)

type ina219Options struct {
	busOptions
	ShuntOhms   *float64 `toml:"shunt_ohms"`    // default 0.1 (most breakout boards)
	MaxCurrentA *float64 `toml:"max_current_a"` // default 3.2
}

const (
	// periph configures the INA219 with PGA /8: ±320 mV across the shunt.
	ina219ShuntFullScaleV = 0.32
	// The calibration register is 16 bits: cal = 0.04096 / (I_max/2¹⁵ · R)
	// (datasheet equation 1) must stay below 2¹⁶.
	ina219MinShuntV = 0.04096 * (1 << 15) / (1 << 16)
	// Datasheet: bus voltage 0..26 V.
	ina219MaxBusV = 26
)

var ina219Chip = chip{
	kind:  "ina219",
	addrs: []uint16{0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f},
	keys:  []string{"voltage_v", "current_a", "power_w"},
}

type ina219Sensor struct {
	*device
	dev *ina219.Dev
}

// NewINA219 is the "ina219" kind: bus voltage, current through the shunt
// and their product.
func NewINA219(s sensors.Spec) (sensors.Sensor, error) {
	var o ina219Options
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	shunt, maxI := 0.1, 3.2
	if o.ShuntOhms != nil {
		shunt = *o.ShuntOhms
	}
	if o.MaxCurrentA != nil {
		maxI = *o.MaxCurrentA
	}
	if !(shunt > 0) || math.IsInf(shunt, 0) {
		return nil, optionErr(ina219Chip.kind, "shunt_ohms", shunt, "a resistance > 0 in ohms, e.g. 0.1")
	}
	if !(maxI > 0) || math.IsInf(maxI, 0) {
		return nil, optionErr(ina219Chip.kind, "max_current_a", maxI, "a current > 0 in amperes, e.g. 3.2")
	}
	// The tolerance lets the defaults' 0.1 × 3.2 (0.32000000000000006) pass.
	if v := shunt * maxI; v > ina219ShuntFullScaleV*(1+1e-9) || v < ina219MinShuntV {
		return nil, fmt.Errorf("%s: %w: max_current_a × shunt_ohms = %.4g V is not allowed (allowed: %.5g..%.2g V, the shunt input's range)", ina219Chip.kind, sensors.ErrOption, v, ina219MinShuntV, ina219ShuntFullScaleV)
	}
	c := ina219Chip
	maxShuntI := ina219ShuntFullScaleV / shunt
	c.ranges = map[string]sensors.Range{
		"voltage_v": {Min: 0, Max: ina219MaxBusV},
		"current_a": {Min: -maxShuntI, Max: maxShuntI},
		"power_w":   {Min: 0, Max: ina219MaxBusV * maxShuntI},
	}
	d, b, err := open(s, c, o.busOptions)
	if err != nil {
		return nil, err
	}
	dev, err := ina219.New(b, &ina219.Opts{
		Address:       int(d.addr),
		SenseResistor: physic.ElectricResistance(math.Round(shunt * float64(physic.Ohm))),
		MaxCurrent:    physic.ElectricCurrent(math.Round(maxI * float64(physic.Ampere))),
	})
	if err != nil {
		return nil, d.errorf("init: %w", err)
	}
	return &ina219Sensor{device: d, dev: dev}, nil
}

func (s *ina219Sensor) Read(ctx context.Context) (sensors.Values, error) {
	return s.read(ctx, func(context.Context) (sensors.Values, error) {
		pm, err := s.dev.Sense()
		if err != nil {
			return nil, fmt.Errorf("read measurement: %w", err)
		}
		// Register LSBs: bus 4 mV; current and power depend on the
		// calibration (0.1 mA and 2 mW by default).
		return sensors.Values{
			"voltage_v": round(float64(pm.Voltage)/float64(physic.Volt), 3),
			"current_a": round(float64(pm.Current)/float64(physic.Ampere), 4),
			"power_w":   round(float64(pm.Power)/float64(physic.Watt), 4),
		}, nil
	})
}
