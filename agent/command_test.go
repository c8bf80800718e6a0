package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
)

type replyMsg struct {
	ID     *string        `json:"id"`
	OK     bool           `json:"ok"`
	Result map[string]any `json:"result"`
	Error  string         `json:"error"`
}

// cmdEnv is a running agent dev1 with sim1 and relay1, and a monitor
// subscribed to everything under edge/dev1/.
type cmdEnv struct {
	*env
	r   *running
	sub *brokertest.Sub
}

func newCmdEnv(t *testing.T) *cmdEnv {
	e := newEnv(t)
	sub := e.sub("edge/dev1/#")
	r := e.start(e.config("dev1", simParts))
	r.waitLog(t, "msg=online", 10*time.Second)
	return &cmdEnv{env: e, r: r, sub: sub}
}

// send publishes a command as ops, optionally with a Response Topic and
// Correlation Data, and returns the reply the monitor sees.
func (c *cmdEnv) send(t *testing.T, payload, respTopic, corr string) (replyMsg, brokertest.Msg) {
	t.Helper()
	var props [][]string
	if respTopic != "" {
		props = append(props, []string{"publish", "response-topic", respTopic})
	}
	if corr != "" {
		props = append(props, []string{"publish", "correlation-data", corr})
	}
	if err := c.ops.Pub(c.ctx, "edge/dev1/cmd", []byte(payload), 1, false, props...); err != nil {
		t.Fatal(err)
	}
	want := "edge/dev1/reply"
	if respTopic != "" {
		want = respTopic
	}
	m, err := c.sub.NextMsg(want, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return decode[replyMsg](t, m.Payload), m
}

func TestCommands(t *testing.T) {
	c := newCmdEnv(t)

	t.Run("ping", func(t *testing.T) {
		r, _ := c.send(t, `{"id":"c1","action":"ping"}`, "", "")
		if !r.OK || r.ID == nil || *r.ID != "c1" || r.Result["pong"] != true || r.Result["version"] != "test" {
			t.Errorf("reply = %+v", r)
		}
	})
	t.Run("response topic and correlation data", func(t *testing.T) {
		r, m := c.send(t, `{"id":"c2","action":"ping"}`, "edge/dev1/reply/ops-42", "req-42")
		if !r.OK || m.Correlation != "req-42" {
			t.Errorf("reply on %s = %+v, correlation %q, want ok with req-42", m.Topic, r, m.Correlation)
		}
	})
	t.Run("response topic outside the ACL is refused and logged", func(t *testing.T) {
		if err := c.ops.Pub(c.ctx, "edge/dev1/cmd", []byte(`{"id":"c2x","action":"ping"}`), 1, false,
			[]string{"publish", "response-topic", "ops/inbox"}); err != nil {
			t.Fatal(err)
		}
		line := c.r.waitLog(t, "topic=ops/inbox", 5*time.Second)
		for _, w := range []string{"broker refused publish", "0x87", "Response Topics under edge/dev1/reply/"} {
			if !strings.Contains(line, w) {
				t.Errorf("log lacks %q: %s", w, line)
			}
		}
	})
	t.Run("read all", func(t *testing.T) {
		r, _ := c.send(t, `{"id":"c3","action":"read"}`, "", "")
		v, ok := r.Result["sim1"].(map[string]any)
		if !r.OK || !ok || v["temperature_c"] == nil {
			t.Errorf("reply = %+v, want sim1 values", r)
		}
	})
	t.Run("read one", func(t *testing.T) {
		r, _ := c.send(t, `{"id":"c4","action":"read","args":{"sensor":"sim1"}}`, "", "")
		if !r.OK || r.Result["sim1"] == nil || len(r.Result) != 1 {
			t.Errorf("reply = %+v", r)
		}
	})
	t.Run("set publishes retained state", func(t *testing.T) {
		if err := c.ops.Pub(c.ctx, "edge/dev1/cmd", []byte(`{"id":"c5","action":"set","args":{"actuator":"relay1","value":true}}`), 1, false); err != nil {
			t.Fatal(err)
		}
		// The announce published the initial false; wait for the change.
		var m brokertest.Msg
		for !strings.Contains(m.Payload, `"value":true`) {
			var err error
			if m, err = c.sub.NextMsg("edge/dev1/state/relay1", 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		st := decode[struct {
			Value any    `json:"value"`
			TS    string `json:"ts"`
		}](t, m.Payload)
		if st.Value != true || st.TS == "" {
			t.Errorf("state = %s", m.Payload)
		}
		p, err := c.sub.Next("edge/dev1/reply", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r := decode[replyMsg](t, p); !r.OK || r.Result["value"] != true || r.Result["actuator"] != "relay1" {
			t.Errorf("reply = %s", p)
		}
		// Retained: a late subscriber sees the state.
		late := c.env.sub("edge/dev1/state/relay1")
		m, err = late.NextMsg("edge/dev1/state/relay1", 5*time.Second)
		if err != nil || !m.Retained || !strings.Contains(m.Payload, `"value":true`) {
			t.Errorf("retained state = %+v, %v", m, err)
		}
	})
	t.Run("repeated id is not run again", func(t *testing.T) {
		first, _ := c.send(t, `{"id":"c6","action":"set","args":{"actuator":"relay1","value":false}}`, "", "")
		// Same id, other value: the first reply comes back, relay stays false.
		again, _ := c.send(t, `{"id":"c6","action":"set","args":{"actuator":"relay1","value":true}}`, "", "")
		if !first.OK || first.Result["value"] != false || again.Result["value"] != false {
			t.Errorf("first = %+v, again = %+v: want the first reply re-sent", first, again)
		}
		if got := c.r.d.actBy["relay1"].State(); got != false {
			t.Errorf("relay1 = %v after the repeated id, want false", got)
		}
	})
	t.Run("expired", func(t *testing.T) {
		if r, _ := c.send(t, `{"id":"c7","action":"set","args":{"actuator":"relay1","value":false}}`, "", ""); !r.OK {
			t.Fatalf("set false: %+v", r)
		}
		past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
		r, _ := c.send(t, fmt.Sprintf(`{"id":"c8","action":"set","args":{"actuator":"relay1","value":true},"expires":%q}`, past), "", "")
		if r.OK || !strings.Contains(r.Error, "expired") {
			t.Errorf("reply = %+v, want expired refusal", r)
		}
		if c.r.d.actBy["relay1"].State() != false {
			t.Error("expired command switched the relay")
		}
		future := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
		if r, _ := c.send(t, fmt.Sprintf(`{"id":"c9","action":"ping","expires":%q}`, future), "", ""); !r.OK {
			t.Errorf("unexpired command refused: %+v", r)
		}
	})
}

// TestBadInput sends each kind of bad command: each gets ok:false with a
// clear error, and the agent keeps publishing telemetry.
func TestBadInput(t *testing.T) {
	c := newCmdEnv(t)
	big := `{"id":"big","action":"ping","pad":"` + strings.Repeat("x", 65*1024) + `"}`
	cases := []struct {
		name, payload string
		id            *string
		want          string
	}{
		{"malformed JSON", `{"id":"b1","action":`, nil, "malformed JSON"},
		{"not an object", `[1,2]`, nil, "not a JSON object"},
		{"over 64 KiB", big, nil, "over the 65536 byte limit"},
		{"no id", `{"action":"ping"}`, nil, `no "id"`},
		{"id not a string", `{"id":7,"action":"ping"}`, nil, `"id" must be a string`},
		{"unknown action", `{"id":"b2","action":"reboot"}`, ptr("b2"), `unknown action "reboot"`},
		{"unknown actuator", `{"id":"b3","action":"set","args":{"actuator":"pump9","value":true}}`, ptr("b3"), `unknown actuator "pump9" (configured: relay1)`},
		{"unknown sensor", `{"id":"b4","action":"read","args":{"sensor":"nope"}}`, ptr("b4"), `unknown sensor "nope" (configured: sim1)`},
		{"value of wrong type", `{"id":"b5","action":"set","args":{"actuator":"relay1","value":"maybe"}}`, ptr("b5"), `takes true/false, 0/1 or "on"/"off", got string "maybe"`},
		{"actuator of wrong type", `{"id":"b6","action":"set","args":{"actuator":5,"value":true}}`, ptr("b6"), `"actuator" must be a string`},
		{"args not an object", `{"id":"b7","action":"read","args":"sim1"}`, ptr("b7"), `"args" must be an object`},
		{"unknown arg", `{"id":"b8","action":"read","args":{"sensr":"sim1"}}`, ptr("b8"), `unknown field "sensr"`},
		{"bad expires", `{"id":"b9","action":"ping","expires":"tomorrow"}`, ptr("b9"), `not an RFC 3339 time`},
		{"missing value", `{"id":"b10","action":"set","args":{"actuator":"relay1"}}`, ptr("b10"), `set needs args.value`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := c.send(t, tc.payload, "", "")
			if r.OK || !strings.Contains(r.Error, tc.want) {
				t.Errorf("reply = %+v, want ok:false with %q", r, tc.want)
			}
			if (r.ID == nil) != (tc.id == nil) || (r.ID != nil && *r.ID != *tc.id) {
				t.Errorf("reply id = %v, want %v", deref(r.ID), deref(tc.id))
			}
		})
	}
	// Still alive and publishing.
	before, err := c.sub.Next("edge/dev1/telemetry/sim1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	after, err := c.sub.Next("edge/dev1/telemetry/sim1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if decode[telemetryMsg](t, after).Seq <= decode[telemetryMsg](t, before).Seq {
		t.Errorf("telemetry stalled after bad input: %s then %s", before, after)
	}
	if r, _ := c.send(t, `{"id":"ok1","action":"ping"}`, "", ""); !r.OK {
		t.Errorf("ping after bad input: %+v", r)
	}
}

func ptr(s string) *string { return &s }

func deref(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}
