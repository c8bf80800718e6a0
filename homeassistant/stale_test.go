package homeassistant

import (
	"slices"
	"strings"
	"testing"
)

func TestConfigFilter(t *testing.T) {
	cases := []struct {
		name   string
		dev    Device
		topics Topics
		want   string
	}{
		{"default prefix", Device{ID: "dev1"}, Topics{Base: "edge/dev1"}, "homeassistant/+/dev1/+/config"},
		{"own prefix", Device{ID: "dev1"}, Topics{Prefix: "ha/disc/", Base: "edge/dev1"}, "ha/disc/+/dev1/+/config"},
		{"id sanitised like the topics", Device{ID: "board.7+#"}, Topics{}, "homeassistant/+/board_7__/+/config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ConfigFilter(tc.dev, tc.topics); got != tc.want {
				t.Errorf("ConfigFilter = %q, want %q", got, tc.want)
			}
		})
	}
}

// staleCases drive TestStale and seed FuzzStale.
var staleCases = []struct {
	name     string
	existing []string
	sensors  []Sensor // fixtureSensors when nil
	want     []string
}{
	{
		name: "removed sensor",
		existing: []string{
			"homeassistant/sensor/dev1/bme1_temperature_c/config",
			"homeassistant/sensor/dev1/old1_lux/config",
			"homeassistant/binary_sensor/dev1/door_level/config",
			"homeassistant/sensor/dev1/old1_co2_ppm/config",
		},
		want: []string{
			"homeassistant/sensor/dev1/old1_lux/config",
			"homeassistant/sensor/dev1/old1_co2_ppm/config",
		},
	},
	{
		name: "removed key and changed component",
		existing: []string{
			"homeassistant/sensor/dev1/door_level/config", // once a sensor, now a binary_sensor
			"homeassistant/sensor/dev1/sys_temp_c/config",
		},
		want: []string{
			"homeassistant/sensor/dev1/door_level/config",
			"homeassistant/sensor/dev1/sys_temp_c/config",
		},
	},
	{
		name: "nothing stale",
		existing: []string{
			"homeassistant/sensor/dev1/bme1_temperature_c/config",
			"homeassistant/switch/dev1/relay1/config",
		},
	},
	{name: "nothing on the broker"},
	{
		name: "foreign topics ignored",
		existing: []string{
			"homeassistant/sensor/dev2/bme1_lux/config",      // another board
			"homeassistant/sensor/dev10/old_lux/config",      // a name that starts like ours
			"other/sensor/dev1/old_lux/config",               // another prefix
			"homeassistant/sensor/dev1/old_lux/config/extra", // not a config topic
			"homeassistant/sensor/dev1/old_lux",              // too short
			"homeassistant/sensor/dev1/a/b/config",           // too long
			"homeassistant/dev1/old_lux/config",              // no component
			"edge/dev1/state/relay1",                         // our own wire topics
			"$SYS/broker/uptime",                             // the broker's
			"",                                               // garbage
			"homeassistant/sensor/dev1/gone_lux/config",      // ours and stale
			"homeassistant/sensor/dev1/gone_lux/config",      // reported twice by a confused caller
		},
		want: []string{"homeassistant/sensor/dev1/gone_lux/config"},
	},
	{
		name:     "every sensor removed",
		sensors:  []Sensor{},
		existing: []string{"homeassistant/sensor/dev1/bme1_temperature_c/config", "homeassistant/switch/dev1/relay1/config"},
		want:     []string{"homeassistant/sensor/dev1/bme1_temperature_c/config"},
	},
}

func TestStale(t *testing.T) {
	for _, tc := range staleCases {
		t.Run(tc.name, func(t *testing.T) {
			sensors := tc.sensors
			if sensors == nil {
				sensors = fixtureSensors
			}
			current := Configs(fixtureDevice, fixtureTopics, sensors, fixtureActuators)
			got := Stale(tc.existing, current)
			var topics []string
			for _, m := range got {
				if len(m.Payload) != 0 {
					t.Errorf("%s: payload %q, want empty (removal)", m.Topic, m.Payload)
				}
				topics = append(topics, m.Topic)
			}
			if !slices.Equal(topics, tc.want) {
				t.Errorf("Stale = %q, want %q", topics, tc.want)
			}
			// StaleFor agrees when the device is named explicitly.
			var forTopics []string
			for _, m := range StaleFor(fixtureDevice, fixtureTopics, tc.existing, current) {
				forTopics = append(forTopics, m.Topic)
			}
			if !slices.Equal(forTopics, tc.want) {
				t.Errorf("StaleFor = %q, want %q", forTopics, tc.want)
			}
		})
	}
}

// With nothing configured Stale cannot tell whose topics these are;
// StaleFor can, and removes all of the device's.
func TestStaleNothingCurrent(t *testing.T) {
	existing := []string{
		"homeassistant/sensor/dev1/bme1_temperature_c/config",
		"homeassistant/sensor/dev2/bme1_temperature_c/config",
		"homeassistant/switch/dev1/relay1/config",
	}
	if got := Stale(existing, nil); len(got) != 0 {
		t.Errorf("Stale(existing, nil) = %v, want none", got)
	}
	var topics []string
	for _, m := range StaleFor(fixtureDevice, fixtureTopics, existing, nil) {
		topics = append(topics, m.Topic)
	}
	want := []string{"homeassistant/sensor/dev1/bme1_temperature_c/config", "homeassistant/switch/dev1/relay1/config"}
	if !slices.Equal(topics, want) {
		t.Errorf("StaleFor(…, nil) = %q, want %q", topics, want)
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a//c", false},
		{"a/+/c", "a/b/c/d", false},
		{"a/+/c", "a/b", false},
		{"a/#", "a/b/c", true},
		{"+/x", "$SYS/x", false},
		{"homeassistant/+/dev1/+/config", "homeassistant/sensor/dev1/x/config", true},
		{"homeassistant/+/dev1/+/config", "homeassistant/sensor/dev11/x/config", false},
	}
	for _, tc := range cases {
		if got := match(tc.filter, tc.topic); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// FuzzStale checks that whatever the broker returns, Stale only ever removes
// topics under the device's filter that are not current, each once.
func FuzzStale(f *testing.F) {
	for _, tc := range staleCases {
		f.Add(strings.Join(tc.existing, "\n"))
	}
	current := Configs(fixtureDevice, fixtureTopics, fixtureSensors, fixtureActuators)
	filter := ConfigFilter(fixtureDevice, fixtureTopics)
	f.Fuzz(func(t *testing.T, existing string) {
		seen := map[string]bool{}
		for _, m := range Stale(strings.Split(existing, "\n"), current) {
			if !match(filter, m.Topic) {
				t.Errorf("removal %q outside %q", m.Topic, filter)
			}
			if slices.ContainsFunc(current, func(c Message) bool { return c.Topic == m.Topic }) {
				t.Errorf("removal %q of a current config", m.Topic)
			}
			if seen[m.Topic] || len(m.Payload) != 0 {
				t.Errorf("removal %q repeated or not empty", m.Topic)
			}
			seen[m.Topic] = true
		}
	})
}
