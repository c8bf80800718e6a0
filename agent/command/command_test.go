package command

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	exp := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want Request
	}{
		{`{"id":"c1","action":"ping"}`, Request{ID: "c1", Action: "ping"}},
		{`{"id":"c1","action":"ping","args":{}}`, Request{ID: "c1", Action: "ping"}},
		{`{"id":"c1","action":"ping","args":null,"expires":null}`, Request{ID: "c1", Action: "ping"}},
		{`{"id":"c2","action":"read"}`, Request{ID: "c2", Action: "read"}},
		{`{"id":"c2","action":"read","args":{"sensor":"sim1"}}`, Request{ID: "c2", Action: "read", Read: ReadArgs{Sensor: "sim1"}}},
		{`{"id":"c3","action":"set","args":{"actuator":"relay1","value":true},"expires":"2026-11-23T10:00:00Z"}`,
			Request{ID: "c3", Action: "set", Set: SetArgs{Actuator: "relay1", Value: true}, Expires: exp}},
		{`{"id":"c4","action":"set","args":{"actuator":"dim","value":0.5}}`, Request{ID: "c4", Action: "set", Set: SetArgs{Actuator: "dim", Value: 0.5}}},
		{` {"id":"c5","action":"set","args":{"value":null,"actuator":"r"}} `, Request{ID: "c5", Action: "set", Set: SetArgs{Actuator: "r"}}},
	}
	for _, tc := range cases {
		got, err := Decode([]byte(tc.in))
		if err != nil {
			t.Errorf("Decode(%s): %v", tc.in, err)
			continue
		}
		if got.ID != tc.want.ID || got.Action != tc.want.Action || got.Read != tc.want.Read || got.Set != tc.want.Set || !got.Expires.Equal(tc.want.Expires) {
			t.Errorf("Decode(%s) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

var badCases = []struct {
	in     string
	id     string // "" = null
	substr string
}{
	{``, "", "empty payload"},
	{`{`, "", "malformed JSON"},
	{`{"id":"x","action":"ping"} trailing`, "x", "trailing data"},
	{`{"id":"x","action":"ping"} {}`, "x", "trailing data"},
	{`"ping"`, "", "not a JSON object"},
	{`[]`, "", "not a JSON object"},
	{"\xff", "", "not valid UTF-8"},
	{`{"action":"ping"}`, "", `no "id"`},
	{`{"id":null,"action":"ping"}`, "", `no "id"`},
	{`{"id":1,"action":"ping"}`, "", `"id" must be a string, got a number`},
	{`{"id":"","action":"ping"}`, "", `"id" must be 1-128 bytes`},
	{`{"id":"` + strings.Repeat("i", 129) + `","action":"ping"}`, "", `"id" must be 1-128 bytes`},
	{`{"id":"c","action":"ping","extra":1}`, "c", `unknown field "extra"`},
	{`{"id":"c","action":"set","args":{"actuator":"r","value":1e999}}`, "c", `set args.value`},
	{`{"id":"c"}`, "c", `no "action"`},
	{`{"id":"c","action":5}`, "c", `"action" must be a string`},
	{`{"id":"c","action":"reboot"}`, "c", `unknown action "reboot"`},
	{`{"id":"c","action":"ping","args":{"x":1}}`, "c", `ping takes no args: unknown field "x"`},
	{`{"id":"c","action":"ping","args":[1]}`, "c", `"args" must be an object, got an array`},
	{`{"id":"c","action":"read","args":{"sensor":1}}`, "c", `"sensor" must be a string, got a number`},
	{`{"id":"c","action":"set","args":{"value":true}}`, "c", `set needs args.actuator`},
	{`{"id":"c","action":"set","args":{"actuator":"r"}}`, "c", `set needs args.value`},
	{`{"id":"c","action":"set","args":{"actuator":["r"],"value":1}}`, "c", `"actuator" must be a string, got an array`},
	{`{"id":"c","action":"ping","expires":5}`, "c", `"expires" must be an RFC 3339 time string`},
	{`{"id":"c","action":"ping","expires":"2026-13-01"}`, "c", `not an RFC 3339 time`},
	{`{"id":"c","action":"ping","pad":"` + strings.Repeat("x", MaxPayload) + `"}`, "", "over the 65536 byte limit"},
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range badCases {
		_, err := Decode([]byte(tc.in))
		e, ok := err.(*Error)
		if !ok {
			t.Errorf("Decode(%.60s) = %v, want *Error", tc.in, err)
			continue
		}
		if !strings.Contains(e.Msg, tc.substr) {
			t.Errorf("Decode(%.60s) = %q, want it to contain %q", tc.in, e.Msg, tc.substr)
		}
		gotID := ""
		if e.ID != nil {
			gotID = *e.ID
		}
		if gotID != tc.id {
			t.Errorf("Decode(%.60s) id = %q, want %q", tc.in, gotID, tc.id)
		}
	}
}

func TestPeekID(t *testing.T) {
	for in, want := range map[string]string{`{"id":"a","x":1}`: "a", `{"id":5}`: "", `nope`: "", `{"id":""}`: ""} {
		got := ""
		if p := PeekID([]byte(in)); p != nil {
			got = *p
		}
		if got != want {
			t.Errorf("PeekID(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestReplyJSON(t *testing.T) {
	b, _ := json.Marshal(Fail(nil, "bad"))
	if string(b) != `{"id":null,"ok":false,"error":"bad"}` {
		t.Errorf("Fail(nil) = %s", b)
	}
	b, _ = json.Marshal(OK("c1", map[string]bool{"pong": true}))
	if string(b) != `{"id":"c1","ok":true,"result":{"pong":true}}` {
		t.Errorf("OK = %s", b)
	}
}

// FuzzDecode: any payload decodes or fails with *Error, never panics; an
// accepted command has an id and a known action, and its reply encodes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"c3","action":"set","args":{"actuator":"relay1","value":true},"expires":"2026-11-23T10:00:00Z"}`))
	f.Add([]byte(`{"id":"c2","action":"read","args":{"sensor":"sim1"}}`))
	for _, tc := range badCases {
		if len(tc.in) < 1024 {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if r.ID == "" || (r.Action != ActionPing && r.Action != ActionRead && r.Action != ActionSet) {
			t.Fatalf("accepted %+v", r)
		}
		if _, err := json.Marshal(OK(r.ID, r.Set.Value)); err != nil {
			t.Fatalf("reply does not encode: %v", err)
		}
	})
}

// BenchmarkDecode is the hot path of every command: a set with an expiry.
func BenchmarkDecode(b *testing.B) {
	payload := []byte(`{"id":"c1","action":"set","args":{"actuator":"relay1","value":true},"expires":"2030-01-01T00:00:00Z"}`)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}
