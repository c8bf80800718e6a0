package homeassistant

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// The fixture board: a BME280, a door contact on a GPIO input, the board's
// own health, and a relay.
var (
	fixtureDevice  = Device{ID: "dev1", Name: "Greenhouse", Version: "1.0.0", Model: "edge agent"}
	fixtureTopics  = Topics{Base: "edge/dev1"}
	fixtureSensors = []Sensor{
		{Name: "bme1", Type: "bme280", Keys: []string{"temperature_c", "humidity_pct", "pressure_hpa"}},
		{Name: "door", Type: "gpio-in", Keys: []string{"level"}},
		{Name: "sys", Type: "system", Keys: []string{"load1", "load5", "load15", "mem_used_pct", "uptime_s"}},
	}
	fixtureActuators = []Actuator{{Name: "relay1", Type: "gpio-out"}}
)

const goldenDir = "testdata/configs"

// TestConfigsGolden compares each message with
// testdata/configs/<component>/<object_id>.json (indented for review), and
// checks no golden file is left without a message.
func TestConfigsGolden(t *testing.T) {
	msgs := Configs(fixtureDevice, fixtureTopics, fixtureSensors, fixtureActuators)
	if *updateGolden {
		if err := os.RemoveAll(goldenDir); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, m := range msgs {
		l := strings.Split(m.Topic, "/")
		if len(l) != 5 || l[0] != "homeassistant" || l[2] != "dev1" || l[4] != "config" {
			t.Fatalf("topic %q, want homeassistant/<component>/dev1/<object_id>/config", m.Topic)
		}
		path := filepath.Join(goldenDir, l[1], l[3]+".json")
		want[filepath.ToSlash(path)] = true
		var got bytes.Buffer
		if err := json.Indent(&got, m.Payload, "", "  "); err != nil {
			t.Fatalf("%s: payload is not JSON: %v\n%s", m.Topic, err, m.Payload)
		}
		got.WriteByte('\n')
		if *updateGolden {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		golden, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(got.Bytes(), golden) {
			t.Errorf("%s: got\n%s\nwant (%s)\n%s", m.Topic, got.Bytes(), path, golden)
		}
	}
	err := filepath.WalkDir(goldenDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !want[filepath.ToSlash(path)] {
			t.Errorf("golden file %s has no message (run go test -update)", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 1+3+1+5 {
		t.Errorf("got %d messages, want 10 (3 bme1, 1 door, 5 sys, 1 relay1)", len(want))
	}
}

// TestConfigsValid checks what HA needs of every payload whatever the input:
// JSON, a unique unique_id, and a topic of its own.
func TestConfigsValid(t *testing.T) {
	cases := []struct {
		name      string
		dev       Device
		topics    Topics
		sensors   []Sensor
		actuators []Actuator
		want      int
	}{
		{"fixture", fixtureDevice, fixtureTopics, fixtureSensors, fixtureActuators, 10},
		{"nothing", fixtureDevice, fixtureTopics, nil, nil, 0},
		{"collisions after sanitising", Device{ID: "dev.1"}, Topics{Prefix: "ha/", Base: "edge/dev.1/"},
			[]Sensor{
				{Name: "a_b", Type: "sim", Keys: []string{"c"}},
				{Name: "a", Type: "sim", Keys: []string{"b_c", "b.c"}},
				{Name: "relay1", Type: "sim", Keys: nil},
			},
			[]Actuator{{Name: "a_b_c"}, {Name: "a b c"}}, 5},
		{"repeats published once", fixtureDevice, fixtureTopics,
			[]Sensor{{Name: "s", Keys: []string{"lux", "lux"}}, {Name: "s", Keys: []string{"lux"}}},
			[]Actuator{{Name: "r"}, {Name: "r"}}, 2},
		{"hostile names", Device{ID: "d+#/1"}, fixtureTopics,
			[]Sensor{{Name: `x"{{ 7*7 }}`, Keys: []string{`k'"\`, "9lives", "level"}}},
			[]Actuator{{Name: `r"{% raw %}\`}}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs := Configs(tc.dev, tc.topics, tc.sensors, tc.actuators)
			if len(msgs) != tc.want {
				t.Errorf("got %d messages, want %d", len(msgs), tc.want)
			}
			filter := ConfigFilter(tc.dev, tc.topics)
			ids, topics := map[string]string{}, map[string]bool{}
			for _, m := range msgs {
				var c struct {
					UniqueID        string `json:"unique_id"`
					CommandTemplate string `json:"command_template"`
				}
				if err := json.Unmarshal(m.Payload, &c); err != nil {
					t.Fatalf("%s: payload is not JSON: %v\n%s", m.Topic, err, m.Payload)
				}
				if c.UniqueID == "" {
					t.Errorf("%s: no unique_id", m.Topic)
				}
				if prev, dup := ids[c.UniqueID]; dup {
					t.Errorf("unique_id %q on both %s and %s", c.UniqueID, prev, m.Topic)
				}
				ids[c.UniqueID] = m.Topic
				if topics[m.Topic] {
					t.Errorf("topic %s used twice", m.Topic)
				}
				topics[m.Topic] = true
				if !match(filter, m.Topic) {
					t.Errorf("topic %s does not match ConfigFilter %s", m.Topic, filter)
				}
				if strings.ContainsAny(strings.Join(strings.Split(m.Topic, "/")[1:4], ""), "+#") {
					t.Errorf("topic %s has a wildcard in a level", m.Topic)
				}
			}
		})
	}
}

// TestCommandTemplate renders the switch's command_template the way HA does
// for the few constructs it uses, and checks the result is a command the
// agent accepts, for names that would break naive quoting.
func TestCommandTemplate(t *testing.T) {
	for _, name := range []string{"relay1", `r"{% raw %}\`, "a{{b}}c"} {
		tmpl := commandTemplate(name)
		for value, want := range map[string]bool{"ON": true, "OFF": false} {
			out := renderCommand(t, tmpl, value)
			var cmd struct {
				ID     string `json:"id"`
				Action string `json:"action"`
				Args   struct {
					Actuator string `json:"actuator"`
					Value    bool   `json:"value"`
				} `json:"args"`
				Expires string `json:"expires"`
			}
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&cmd); err != nil {
				t.Fatalf("%q, %s: rendered command is not the agent's JSON: %v\n%s", name, value, err, out)
			}
			if cmd.Action != "set" || cmd.Args.Actuator != name || cmd.Args.Value != want || cmd.ID == "" || cmd.Expires == "" {
				t.Errorf("%q, %s: got %+v", name, value, cmd)
			}
		}
	}
}

// renderCommand substitutes the four Jinja expressions commandTemplate uses
// and fails on any other, so a name cannot smuggle template code in.
func renderCommand(t *testing.T, tmpl, value string) string {
	t.Helper()
	subst := map[string]string{
		"{{ value | lower }}":                               strings.ToLower(value),
		"{{ now().timestamp() }}":                           "1795410641.578123",
		"{{ 'true' if value == 'ON' else 'false' }}":        map[bool]string{true: "true", false: "false"}[value == "ON"],
		"{{ (now() + timedelta(seconds=60)).isoformat() }}": "2026-11-23T06:11:41.578123+01:00",
	}
	var out strings.Builder
	for {
		i := strings.Index(tmpl, "{")
		if i < 0 {
			out.WriteString(tmpl)
			return out.String()
		}
		out.WriteString(tmpl[:i])
		tmpl = tmpl[i:]
		if !strings.HasPrefix(tmpl, "{{") && !strings.HasPrefix(tmpl, "{%") && !strings.HasPrefix(tmpl, "{#") {
			out.WriteByte('{')
			tmpl = tmpl[1:]
			continue
		}
		found := false
		for expr, repl := range subst {
			if strings.HasPrefix(tmpl, expr) {
				out.WriteString(repl)
				tmpl = tmpl[len(expr):]
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("template has unexpected Jinja at %q", tmpl)
		}
	}
}

func TestValueTemplate(t *testing.T) {
	cases := []struct{ key, want string }{
		{"temperature_c", "{{ value_json['values'].temperature_c }}"},
		{"9lives", "{{ value_json['values']['9lives'] }}"},
		{`k'"\`, `{{ value_json['values']['k\'"\\'] }}`},
	}
	for _, tc := range cases {
		if got := valueTemplate(tc.key); got != tc.want {
			t.Errorf("valueTemplate(%q) = %s, want %s", tc.key, got, tc.want)
		}
	}
}
