package gpio_test

import (
	"context"
	"fmt"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/edgeagent/agent/sensors"
	"github.com/edgeagent/agent/sensors/gpio"
)

// A relay on an active-low line, switched off when the agent stops. On a
// board, Env.Pin is gpio.HostPin, after host.Init.
func Example() {
	line := &gpiotest.Pin{N: "GPIO17"}
	env := &sensors.Env{Pin: func(string) (pgpio.PinIO, error) { return line, nil }}
	relay, err := gpio.Actuators["gpio-out"](sensors.Spec{
		Name: "pump", Type: "gpio-out", Env: env,
		Options: map[string]any{"pin": "GPIO17", "active_low": true, "on_stop": "off"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	state, _ := relay.Set(context.Background(), "on")
	fmt.Println("state", state, "line", line.Read())
	relay.(sensors.Closer).Close()
	fmt.Println("state", relay.State(), "line", line.Read())
	// Output:
	// state true line Low
	// state false line High
}
