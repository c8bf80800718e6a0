package homeassistant_test

import (
	"fmt"

	"github.com/edgeagent/agent/homeassistant"
)

// A board with a BME280 and a relay, started after its config lost a light
// sensor: the broker still holds that sensor's retained config, so it is
// removed before the current configs are published.
func ExampleConfigs() {
	dev := homeassistant.Device{ID: "dev1", Version: "1.0.0", Model: "edge agent"}
	t := homeassistant.Topics{Base: "edge/dev1"}
	sensors := []homeassistant.Sensor{{Name: "bme1", Type: "bme280", Keys: []string{"temperature_c", "humidity_pct"}}}
	actuators := []homeassistant.Actuator{{Name: "relay1", Type: "gpio-out"}}

	msgs := homeassistant.Configs(dev, t, sensors, actuators)

	// What a subscription to the filter returned from the last run.
	fmt.Println("subscribe", homeassistant.ConfigFilter(dev, t))
	existing := []string{
		"homeassistant/sensor/dev1/bme1_temperature_c/config",
		"homeassistant/sensor/dev1/light1_lux/config",
	}
	for _, m := range append(homeassistant.Stale(existing, msgs), msgs...) {
		what := "config"
		if len(m.Payload) == 0 {
			what = "remove"
		}
		fmt.Println("publish retained", what, m.Topic)
	}
	// Output:
	// subscribe homeassistant/+/dev1/+/config
	// publish retained remove homeassistant/sensor/dev1/light1_lux/config
	// publish retained config homeassistant/sensor/dev1/bme1_temperature_c/config
	// publish retained config homeassistant/sensor/dev1/bme1_humidity_pct/config
	// publish retained config homeassistant/switch/dev1/relay1/config
}
