package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"github.com/edgeagent/agent/sensors"
)

// sht31 is a fake SHT31 at 0x44 on an I2C bus: it answers a measurement
// with 0x6666 for both words (25 °C, 40 %RH) and their CRCs.
type sht31 struct{ mu sync.Mutex }

func (b *sht31) String() string                  { return "fake-i2c-1" }
func (b *sht31) SetSpeed(physic.Frequency) error { return nil }
func (b *sht31) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if addr != 0x44 {
		return errors.New("NACK")
	}
	if len(r) == 6 {
		word := []byte{0x66, 0x66}
		c := crc8(word)
		copy(r, []byte{0x66, 0x66, c, 0x66, 0x66, c})
	}
	return nil
}

// crc8 is the Sensirion CRC (polynomial 0x31, init 0xFF).
func crc8(b []byte) byte {
	c := byte(0xff)
	for _, x := range b {
		c ^= x
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x31
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// boardFixture is a /sys and /proc with one thermal zone.
func boardFixture(t *testing.T) (sys, proc string) {
	root := t.TempDir()
	files := map[string]string{
		"sys/class/thermal/thermal_zone0/temp": "47500\n",
		"sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
		"proc/loadavg":                         "0.50 0.40 0.30 1/100 1234\n",
		"proc/uptime":                          "3600.50 7000.00\n",
		"proc/meminfo":                         "MemTotal:        1000000 kB\nMemFree:          200000 kB\nMemAvailable:     500000 kB\nBuffers: 1000 kB\nCached: 2000 kB\n",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(root, "sys"), filepath.Join(root, "proc")
}

const hwParts = `
[homeassistant]
discovery = true
[[sensor]]
name = "sht1"
type = "sht3x"
bus = "1"
interval = "200ms"
[[sensor]]
name = "door"
type = "gpio-in"
pin = "GPIO17"
interval = "1s"
[[sensor]]
name = "sys"
type = "system"
interval = "1s"
[[sensor]]
name = "bme9"
type = "bme280"
bus = "9"
interval = "200ms"
[[actuator]]
name = "relay1"
type = "gpio-out"
pin = "GPIO27"
`

// TestHardwareKinds runs a config with several kinds, fakes at the bus and
// pin level, through the real Mosquitto: telemetry from each, an error
// (not a crash) for the sensor whose bus is absent, a relay switched by
// "on", and the Home Assistant configs, including the removal of a sensor
// dropped from the config on the next start.
func TestHardwareKinds(t *testing.T) {
	e := newEnv(t)
	sys, proc := boardFixture(t)
	door := &gpiotest.Pin{N: "GPIO17", L: gpio.High, EdgesChan: make(chan gpio.Level, 1)}
	relay := &gpiotest.Pin{N: "GPIO27"}
	env := &sensors.Env{
		I2C: func(bus string) (i2c.Bus, error) {
			if bus == "1" {
				return &sht31{}, nil
			}
			return nil, errors.New("no such bus: /dev/i2c-" + bus)
		},
		Pin: func(name string) (gpio.PinIO, error) {
			switch name {
			case "GPIO17":
				return door, nil
			case "GPIO27":
				return relay, nil
			}
			return nil, errors.New("no pin " + name)
		},
		SysRoot: sys, ProcRoot: proc, Clock: sensors.RealClock{},
	}
	sub := e.sub("edge/dev1/#", "homeassistant/#")
	r := e.startOpts(e.config("dev1", hwParts), Options{Hardware: env})
	seen := map[string]string{}
	deadline := time.Now().Add(15 * time.Second)
	want := []string{"edge/dev1/telemetry/sht1", "edge/dev1/telemetry/door", "edge/dev1/telemetry/sys", "edge/dev1/telemetry/bme9",
		"homeassistant/sensor/dev1/sht1_temperature_c/config", "homeassistant/binary_sensor/dev1/door_level/config", "homeassistant/switch/dev1/relay1/config"}
	for !hasAll(seen, want) {
		m, err := sub.NextMsg("", time.Until(deadline))
		if err != nil {
			t.Fatalf("%v; seen %v", err, keysOf(seen))
		}
		if _, ok := seen[m.Topic]; !ok {
			seen[m.Topic] = m.Payload
		}
	}
	checks := map[string]string{
		"edge/dev1/telemetry/sht1":                            `"values":{"humidity_pct":40,"temperature_c":25}`,
		"edge/dev1/telemetry/door":                            `"values":{"level":true}`,
		"edge/dev1/telemetry/sys":                             `"temperature_c":47.5`,
		"edge/dev1/telemetry/bme9":                            `"error":"`,
		"homeassistant/sensor/dev1/sht1_temperature_c/config": `"device_class":"temperature"`,
		"homeassistant/switch/dev1/relay1/config":             `"command_topic":"edge/dev1/cmd"`,
	}
	for topic, frag := range checks {
		if !strings.Contains(seen[topic], frag) {
			t.Errorf("%s = %s, want it to contain %s", topic, seen[topic], frag)
		}
	}
	if !strings.Contains(seen["edge/dev1/telemetry/bme9"], "/dev/i2c-9") {
		t.Errorf("the absent bus's error does not name it: %s", seen["edge/dev1/telemetry/bme9"])
	}

	// The relay, switched with "on".
	if err := e.ops.Pub(e.ctx, "edge/dev1/cmd", []byte(`{"id":"h1","action":"set","args":{"actuator":"relay1","value":"on"}}`), 1, false); err != nil {
		t.Fatal(err)
	}
	if p, err := sub.Next("edge/dev1/reply", 5*time.Second); err != nil || !strings.Contains(p, `"ok":true`) {
		t.Fatalf("reply %s, %v", p, err)
	}
	relay.Lock()
	level := relay.L
	relay.Unlock()
	if level != gpio.High {
		t.Errorf("relay pin = %v after \"on\", want High", level)
	}

	// Reading all: the absent sensor's error stands in its place.
	if err := e.ops.Pub(e.ctx, "edge/dev1/cmd", []byte(`{"id":"h2","action":"read"}`), 1, false); err != nil {
		t.Fatal(err)
	}
	if p, err := sub.Next("edge/dev1/reply", 5*time.Second); err != nil || !strings.Contains(p, `"ok":true`) ||
		!strings.Contains(p, `"bme9":{"error":"`) || !strings.Contains(p, `"sht1":{"humidity_pct":40,"temperature_c":25}`) {
		t.Errorf("read all = %s, %v", p, err)
	}

	// Next start without the door sensor: its entity is removed.
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	parts := strings.Replace(hwParts, "[[sensor]]\nname = \"door\"\ntype = \"gpio-in\"\npin = \"GPIO17\"\ninterval = \"1s\"\n", "", 1)
	e.startOpts(e.config("dev1", parts), Options{Hardware: env})
	for {
		m, err := sub.NextMsg("homeassistant/binary_sensor/dev1/door_level/config", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Payload == "" {
			break // the empty retained config that removes the entity
		}
	}
}

func hasAll(m map[string]string, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
