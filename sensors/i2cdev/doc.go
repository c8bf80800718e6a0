// Package i2cdev holds the I²C environmental sensor kinds: BME280, BMP280,
// AHT20, MCP9808, INA219, SCD4x, BH1750 (through periph.io's drivers) and
// SHT3x (written here against i2c.Bus from Sensirion's datasheet).
//
// Each kind is a constructor in Kinds, keyed by the config's type name. A
// kind takes its bus from Spec.Env.I2C, so the daemon hands in one shared,
// serialized bus per adapter and tests hand in an i2ctest.Playback of
// recorded traffic. Options are decoded strictly: "bus" is required,
// "address" defaults to the chip's usual one, and a few chips take tuning
// options (oversampling, filter, shunt resistance, resolution).
//
// A reading is sensors.Values keyed with units ("temperature_c",
// "pressure_hpa", "co2_ppm", ...). A value outside the chip's datasheet
// measurement range is refused with sensors.ErrOutOfRange: on a real bus it
// means a fault (a loose wire, a wrong chip), not weather. Errors name the
// chip, bus and address and wrap their cause:
//
//	sht3x on /dev/i2c-1 at 0x44: read measurement: CRC mismatch on temperature word (got 0x12, want 0x34)
//
// Shape of use:
//
//	env := &sensors.Env{I2C: buses.Open, Clock: sensors.RealClock{}}
//	s, err := i2cdev.Kinds["bme280"](sensors.Spec{
//		Name: "attic", Type: "bme280", Env: env,
//		Options: map[string]any{"bus": "/dev/i2c-1", "address": 0x77},
//	})
//	v, err := s.Read(ctx) // {"temperature_c": 23.72, "humidity_pct": 65.31, "pressure_hpa": 1009.43}
//
// Read honours ctx: a chip that is slow (an SCD4x samples every 5 s) or a
// driver that sleeps is waited for on a goroutine, and a cancelled ctx
// returns at once while the bus transaction in flight finishes on its own.
package i2cdev
