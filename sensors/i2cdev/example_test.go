package i2cdev_test

import (
	"context"
	"fmt"

	"github.com/edgeagent/agent/sensors"
	"github.com/edgeagent/agent/sensors/i2cdev"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// An SHT31 on bus 1, played back: start a single-shot measurement, read
// temperature and humidity words with their CRCs. The daemon's Env.I2C
// would open /dev/i2c-1 instead.
func Example() {
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x44, W: []byte{0x24, 0x00}},
		{Addr: 0x44, R: []byte{0x66, 0x66, 0x93, 0x66, 0x66, 0x93}},
	}}
	env := &sensors.Env{
		I2C:   func(string) (i2c.Bus, error) { return bus, nil },
		Clock: sensors.RealClock{},
	}
	s, err := i2cdev.Kinds["sht3x"](sensors.Spec{
		Name: "greenhouse", Type: "sht3x", Env: env,
		Options: map[string]any{"bus": "/dev/i2c-1", "address": 0x44},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := s.Read(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v)
	// Output: map[humidity_pct:40 temperature_c:25]
}
