package i2cdev

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
)

// bmp280Options are the BMP280's options; the BME280 adds humidity.
type bmp280Options struct {
	busOptions
	TemperatureOversampling *int `toml:"temperature_oversampling"`
	PressureOversampling    *int `toml:"pressure_oversampling"`
	// Filter is the IIR filter coefficient; with one set the chip runs in
	// normal mode (sampling every second on its own) and a read just
	// fetches the latest filtered result.
	Filter *int `toml:"filter"`
}

type bme280Options struct {
	bmp280Options
	HumidityOversampling *int `toml:"humidity_oversampling"`
}

// Datasheet (BST-BME280-DS002 / BST-BMP280-DS001) operating ranges.
var (
	bme280Chip = chip{
		kind:  "bme280",
		addrs: []uint16{0x76, 0x77},
		keys:  []string{"temperature_c", "humidity_pct", "pressure_hpa"},
		ranges: map[string]sensors.Range{
			"temperature_c": {Min: -40, Max: 85},
			"humidity_pct":  {Min: 0, Max: 100},
			"pressure_hpa":  {Min: 300, Max: 1100},
		},
	}
	bmp280Chip = chip{
		kind:  "bmp280",
		addrs: []uint16{0x76, 0x77},
		keys:  []string{"temperature_c", "pressure_hpa"},
		ranges: map[string]sensors.Range{
			"temperature_c": {Min: -40, Max: 85},
			"pressure_hpa":  {Min: 300, Max: 1100},
		},
	}
)

// bmxSensor is a BME280 or BMP280 through periph's bmxx80 driver.
type bmxSensor struct {
	*device
	dev      *bmxx80.Dev
	humidity bool
}

// NewBME280 is the "bme280" kind: temperature, humidity and pressure.
func NewBME280(s sensors.Spec) (sensors.Sensor, error) {
	var o bme280Options
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	h, err := oversampling(bme280Chip.kind, "humidity_oversampling", o.HumidityOversampling)
	if err != nil {
		return nil, err
	}
	return newBMX(s, bme280Chip, o.bmp280Options, h)
}

// NewBMP280 is the "bmp280" kind: temperature and pressure.
func NewBMP280(s sensors.Spec) (sensors.Sensor, error) {
	var o bmp280Options
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	return newBMX(s, bmp280Chip, o, bmxx80.Off)
}

func newBMX(s sensors.Spec, c chip, o bmp280Options, humidity bmxx80.Oversampling) (sensors.Sensor, error) {
	opts := bmxx80.Opts{Humidity: humidity}
	var err error
	if opts.Temperature, err = oversampling(c.kind, "temperature_oversampling", o.TemperatureOversampling); err != nil {
		return nil, err
	}
	if opts.Pressure, err = oversampling(c.kind, "pressure_oversampling", o.PressureOversampling); err != nil {
		return nil, err
	}
	if opts.Filter, err = filter(c.kind, o.Filter); err != nil {
		return nil, err
	}
	if opts.Filter != bmxx80.NoFilter {
		// periph runs the chip in normal mode only with both set.
		opts.Standby = time.Second
	}
	d, b, err := open(s, c, o.busOptions)
	if err != nil {
		return nil, err
	}
	dev, err := bmxx80.NewI2C(b, d.addr, &opts)
	if err != nil {
		return nil, d.errorf("init: %w", err)
	}
	// The driver takes whichever of BMP180/BMP280/BME280 answers; a BMP280
	// configured as a BME280 would report no humidity without this.
	want := strings.ToUpper(c.kind)
	if got, _, _ := strings.Cut(dev.String(), "{"); got != want {
		return nil, d.errorf("init: chip reports itself as %s, not %s (set type = %q if that is what is fitted)", got, want, strings.ToLower(got))
	}
	return &bmxSensor{device: d, dev: dev, humidity: humidity != bmxx80.Off}, nil
}

func (s *bmxSensor) Read(ctx context.Context) (sensors.Values, error) {
	return s.read(ctx, func(context.Context) (sensors.Values, error) {
		var e physic.Env
		if err := s.dev.Sense(&e); err != nil {
			return nil, fmt.Errorf("read measurement: %w", err)
		}
		v := sensors.Values{
			"temperature_c": celsius(e.Temperature),
			"pressure_hpa":  round(float64(e.Pressure)/float64(100*physic.Pascal), 2),
		}
		if s.humidity {
			v["humidity_pct"] = percentRH(e.Humidity)
		}
		return v, nil
	})
}

// oversampling maps a count of samples to periph's setting; unset is 4×,
// periph's default.
func oversampling(kind, name string, n *int) (bmxx80.Oversampling, error) {
	if n == nil {
		return bmxx80.O4x, nil
	}
	switch *n {
	case 1:
		return bmxx80.O1x, nil
	case 2:
		return bmxx80.O2x, nil
	case 4:
		return bmxx80.O4x, nil
	case 8:
		return bmxx80.O8x, nil
	case 16:
		return bmxx80.O16x, nil
	}
	return 0, optionErr(kind, name, *n, "1, 2, 4, 8, 16")
}

func filter(kind string, n *int) (bmxx80.Filter, error) {
	if n == nil {
		return bmxx80.NoFilter, nil
	}
	switch *n {
	case 0:
		return bmxx80.NoFilter, nil
	case 2:
		return bmxx80.F2, nil
	case 4:
		return bmxx80.F4, nil
	case 8:
		return bmxx80.F8, nil
	case 16:
		return bmxx80.F16, nil
	}
	return 0, optionErr(kind, "filter", *n, "0 (off), 2, 4, 8, 16")
}

func celsius(t physic.Temperature) float64 {
	return round(float64(t-physic.ZeroCelsius)/float64(physic.Celsius), 2)
}

func percentRH(h physic.RelativeHumidity) float64 {
	return round(float64(h)/float64(physic.PercentRH), 2)
}
