// Package homeassistant builds the Home Assistant MQTT discovery configs
// (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery) that make
// the agent's sensors and actuators appear in Home Assistant without any YAML
// there: one entity per sensor value, one switch per actuator, all tied to one
// HA device and marked unavailable while our retained status says "offline".
//
// The package is pure: it turns the config into messages and leaves
// publishing to the caller. On every connection, with [homeassistant]
// discovery = true, the agent publishes Configs retained at QoS 1, and on the
// first connection it also cleans up entities whose sensors were removed
// from the config since the last run:
//
//	dev := homeassistant.Device{ID: "dev1", Version: "1.0.0", Model: "edge agent"}
//	t := homeassistant.Topics{Base: "edge/dev1"} // Prefix defaults to "homeassistant"
//	msgs := homeassistant.Configs(dev, t, sensors, actuators)
//	// Subscribe to ConfigFilter for a moment to collect the retained topics
//	// published by earlier runs, then unsubscribe.
//	existing := collectRetained(homeassistant.ConfigFilter(dev, t))
//	for _, m := range append(homeassistant.Stale(existing, msgs), msgs...) {
//		publish(m.Topic, m.Payload, retained, qos1) // empty payload: remove
//	}
//
// When discovery is switched off, StaleFor(dev, t, existing, nil) removes
// every entity the device published before.
//
// Topics are <prefix>/<component>/<node_id>/<object_id>/config with node_id
// the device ID and object_id "<sensor>_<key>" or "<actuator>", both reduced
// to [a-zA-Z0-9_-] as HA requires. Entities read the agent's own wire format
// (docs/wire.md) through templates, so nothing is published twice.
package homeassistant

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// DefaultPrefix is Home Assistant's default discovery prefix.
const DefaultPrefix = "homeassistant"

// manufacturer is shown on the HA device page.
const manufacturer = "edge agent"

// commandTTL is how long a command rendered by HA stays valid ("expires").
// The broker keeps our session for 300 s, so without it a click made while
// the board is offline would switch the relay minutes later. It is generous
// because boards without an RTC may run a little ahead of the HA host.
const commandTTL = 60 // seconds

// Device is the agent as one Home Assistant device.
type Device struct {
	ID      string // the agent id (certificate CN); used as node_id and in unique_ids
	Name    string // shown in HA; default ID
	Version string // sw_version
	Model   string // e.g. "edge agent"
}

// Topics says where discovery configs go and where the agent's own topics are.
type Topics struct {
	Prefix string // discovery prefix, default "homeassistant"
	Base   string // "<mqtt prefix>/<id>", e.g. "edge/dev1"
}

// Sensor is one [[sensor]] of the config.
type Sensor struct {
	Name string   // the [[sensor]] name, e.g. "bme1"
	Type string   // its kind, e.g. "bme280", "gpio-in", "system"
	Keys []string // value keys it reports, e.g. ["temperature_c","humidity_pct","pressure_hpa"] or ["level"]
}

// Actuator is one [[actuator]] of the config.
type Actuator struct {
	Name string // e.g. "relay1"
	Type string // "gpio-out", "led", "sim"
}

// Message is one discovery message, to be published retained at QoS 1.
type Message struct {
	Topic   string
	Payload []byte // JSON; empty = remove the entity
}

// quantity is what HA should know about a value key.
type quantity struct {
	label       string // entity name after the sensor name
	deviceClass string
	unit        string
}

// quantities maps the agent's value keys (unit in the name) to HA device
// classes and units. Keys not listed get no class, no unit and no
// state_class, since nothing says their values are numbers.
var quantities = map[string]quantity{
	"temperature_c": {"temperature", "temperature", "°C"},
	"humidity_pct":  {"humidity", "humidity", "%"},
	"pressure_hpa":  {"pressure", "pressure", "hPa"},
	"lux":           {"illuminance", "illuminance", "lx"},
	"co2_ppm":       {"CO2", "carbon_dioxide", "ppm"},
	"current_a":     {"current", "current", "A"},
	"voltage_v":     {"voltage", "voltage", "V"},
	"power_w":       {"power", "power", "W"},
	"mem_used_pct":  {"memory used", "", "%"},
	"uptime_s":      {"uptime", "duration", "s"},
	"load1":         {"load 1m", "", ""},
	"load5":         {"load 5m", "", ""},
	"load15":        {"load 15m", "", ""},
}

// binaryKey is the key of a two-state value (gpio-in), shown as a binary_sensor.
const binaryKey = "level"

// config is one entity's discovery payload. It is a struct, not a map, so the
// keys come out in the same order every time and golden files stay stable.
type config struct {
	Name           string `json:"name"`
	UniqueID       string `json:"unique_id"`
	DeviceClass    string `json:"device_class,omitempty"`
	StateClass     string `json:"state_class,omitempty"`
	Unit           string `json:"unit_of_measurement,omitempty"`
	EntityCategory string `json:"entity_category,omitempty"`

	StateTopic    string `json:"state_topic"`
	ValueTemplate string `json:"value_template"`
	// binary_sensor: what value_template yields; switch: what HA passes to
	// command_template as value.
	PayloadOn  string `json:"payload_on,omitempty"`
	PayloadOff string `json:"payload_off,omitempty"`
	StateOn    string `json:"state_on,omitempty"`
	StateOff   string `json:"state_off,omitempty"`

	CommandTopic    string `json:"command_topic,omitempty"`
	CommandTemplate string `json:"command_template,omitempty"`

	// The single-topic availability form: at the top level the template is
	// availability_template (value_template is the state's).
	AvailabilityTopic    string `json:"availability_topic"`
	AvailabilityTemplate string `json:"availability_template"`
	PayloadAvailable     string `json:"payload_available"`
	PayloadNotAvailable  string `json:"payload_not_available"`

	QoS    int    `json:"qos"`
	Device device `json:"device"`
	Origin origin `json:"origin"`
}

type device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

type origin struct {
	Name      string `json:"name"`
	SWVersion string `json:"sw_version,omitempty"`
}

// Configs returns the retained discovery messages, in a stable order: the
// sensors as given, each one's keys as given, then the actuators as given.
// A repeated sensor key or actuator is published once. Two different entities
// whose object_ids coincide after sanitising ("a_b"+"c" and "a"+"b_c") keep
// unique topics and unique_ids: the later one gets "_2", "_3", ….
func Configs(dev Device, t Topics, sensors []Sensor, actuators []Actuator) []Message {
	prefix, node, base := prefixOf(t), sanitise(dev.ID), strings.TrimSuffix(t.Base, "/")
	name := dev.Name
	if name == "" {
		name = dev.ID
	}
	common := config{
		AvailabilityTopic:    base + "/status",
		AvailabilityTemplate: "{{ value_json.state }}",
		PayloadAvailable:     "online",
		PayloadNotAvailable:  "offline",
		QoS:                  1, // the wire contract's QoS
		Device: device{
			Identifiers:  []string{"edgeagent_" + dev.ID},
			Name:         name,
			Manufacturer: manufacturer,
			Model:        dev.Model,
			SWVersion:    dev.Version,
		},
		Origin: origin{Name: "edgeagent", SWVersion: dev.Version},
	}

	var msgs []Message
	sources := map[string]bool{} // what was already published, to skip repeats
	objects := map[string]bool{} // object_ids taken
	add := func(component, source, object string, c config) {
		if sources[source] {
			return
		}
		sources[source] = true
		object = uniqueObject(objects, object)
		c.UniqueID = dev.ID + "_" + object
		msgs = append(msgs, Message{
			Topic:   prefix + "/" + component + "/" + node + "/" + object + "/config",
			Payload: marshal(c),
		})
	}

	for _, s := range sensors {
		for _, key := range s.Keys {
			c := common
			c.StateTopic = base + "/telemetry/" + s.Name
			if s.Type == "system" {
				// The board's own health: HA lists it apart from the measurements.
				c.EntityCategory = "diagnostic"
			}
			component := "sensor"
			q, known := quantities[key]
			if !known {
				q.label = key
			}
			c.Name = s.Name + " " + q.label
			if key == binaryKey {
				component = "binary_sensor"
				// Works whether the agent reports the level as a bool or 0/1.
				c.ValueTemplate = "{{ 'ON' if value_json['values']." + binaryKey + " else 'OFF' }}"
				c.PayloadOn, c.PayloadOff = "ON", "OFF"
			} else {
				c.ValueTemplate = valueTemplate(key)
				c.DeviceClass, c.Unit = q.deviceClass, q.unit
				if known {
					c.StateClass = "measurement"
				}
			}
			add(component, "s\x00"+s.Name+"\x00"+key, sanitise(s.Name+"_"+key), c)
		}
	}

	for _, a := range actuators {
		c := common
		c.Name = a.Name
		c.StateTopic = base + "/state/" + a.Name
		c.ValueTemplate = "{{ 'ON' if value_json.value else 'OFF' }}"
		c.StateOn, c.StateOff = "ON", "OFF"
		c.PayloadOn, c.PayloadOff = "ON", "OFF"
		c.CommandTopic = base + "/cmd"
		c.CommandTemplate = commandTemplate(a.Name)
		add("switch", "a\x00"+a.Name, sanitise(a.Name), c)
	}
	return msgs
}

// valueTemplate reads one key of a telemetry message. Keys that are not
// plain identifiers are read by subscript so the template stays valid.
func valueTemplate(key string) string {
	if isIdent(key) {
		// value_json['values'], not value_json.values: in Jinja the latter
		// is the dict's values() method, and the template renders nothing.
		return "{{ value_json['values']." + key + " }}"
	}
	return "{{ value_json['values'][" + jinjaString(key) + "] }}"
}

// commandTemplate renders an agent "set" command. HA's payload_on/payload_off
// are fixed strings, and the agent runs a repeated command id only once
// (docs/wire.md), so a fixed payload would switch the relay the first time
// only. HA's MQTT switch renders command_template with value = payload_on or
// payload_off ("ON"/"OFF") on every turn_on/turn_off, so the id can carry the
// time: now().timestamp() has microseconds, and the state word keeps an on
// and an off in the same instant apart. expires keeps a command queued in
// the broker session from acting long after the click.
func commandTemplate(actuator string) string {
	return `{"id":"ha-` + sanitise(actuator) + `-{{ value | lower }}-{{ now().timestamp() }}",` +
		`"action":"set","args":{"actuator":` + templateJSON(actuator) + `,` +
		`"value":{{ 'true' if value == 'ON' else 'false' }}},` +
		`"expires":"{{ (now() + timedelta(seconds=` + strconv.Itoa(commandTTL) + `)).isoformat() }}"}`
}

// templateJSON is s as a JSON string that is also literal text to Jinja:
// braces are written as \u escapes, which JSON decodes back to braces, so a
// name containing "{{" or "{%" cannot become template code.
func templateJSON(s string) string {
	b := marshalString(s)
	b = strings.ReplaceAll(b, "{", `\u007b`)
	return strings.ReplaceAll(b, "}", `\u007d`)
}

// jinjaString is s as a single-quoted Jinja string literal.
func jinjaString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

func isIdent(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// sanitise reduces s to the characters HA allows in node_id and object_id
// (and which are never MQTT wildcards or level separators).
func sanitise(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func uniqueObject(taken map[string]bool, object string) string {
	o := object
	for n := 2; taken[o]; n++ {
		o = object + "_" + strconv.Itoa(n)
	}
	taken[o] = true
	return o
}

func prefixOf(t Topics) string {
	if p := strings.TrimSuffix(t.Prefix, "/"); p != "" {
		return p
	}
	return DefaultPrefix
}

// marshal encodes without HTML escaping, so templates stay readable ("<"
// rather than "\u003c").
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // cannot fail: strings, ints and structs of them
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func marshalString(s string) string { return string(marshal(s)) }
