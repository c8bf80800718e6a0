package agent

import (
	"strings"
	"unicode/utf8"
)

// topics are the device's topic names under <prefix>/<id>/.
type topics struct {
	base, status, cmd, reply string
}

func newTopics(prefix, id string) topics {
	b := prefix + "/" + id
	return topics{base: b, status: b + "/status", cmd: b + "/cmd", reply: b + "/reply"}
}

func (t topics) telemetry(sensor string) string { return t.base + "/telemetry/" + sensor }
func (t topics) state(actuator string) string   { return t.base + "/state/" + actuator }

// validTopicName reports whether s may be published to (MQTT 5 §4.7).
func validTopicName(s string) bool {
	return s != "" && len(s) <= 65535 && utf8.ValidString(s) && !strings.ContainsAny(s, "+#\x00")
}
