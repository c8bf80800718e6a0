package agent

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgeagent/agent/internal/brokertest"
)

type telemetryMsg struct {
	TS     string             `json:"ts"`
	Sensor string             `json:"sensor"`
	Type   string             `json:"type"`
	Seq    uint64             `json:"seq"`
	Values map[string]float64 `json:"values"`
}

type statusMsg struct {
	State       string `json:"state"`
	Role        string `json:"role"`
	Version     string `json:"version"`
	TS          string `json:"ts"`
	CertExpires string `json:"cert_expires"`
	QueueDepth  int    `json:"queue_depth"`
	Dropped     uint64 `json:"dropped"`
	Reconnects  uint64 `json:"reconnects"`
	LastError   string `json:"last_error"`
}

// TestTelemetry checks what an independent subscriber sees: the shape of
// each reading, seq +1 each, and the configured 200 ms rate.
func TestTelemetry(t *testing.T) {
	e := newEnv(t)
	sub := e.sub("edge/dev1/telemetry/#")
	e.start(e.config("dev1", simParts))
	var got []telemetryMsg
	for len(got) < 11 {
		p, err := sub.Next("edge/dev1/telemetry/sim1", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, decode[telemetryMsg](t, p))
	}
	var stamps []time.Time
	for i, m := range got {
		ts, err := time.Parse(time.RFC3339Nano, m.TS)
		if err != nil || !strings.HasSuffix(m.TS, "Z") {
			t.Fatalf("reading %d: ts %q is not RFC 3339 UTC", i, m.TS)
		}
		if m.Sensor != "sim1" || m.Type != "sim" {
			t.Errorf("reading %d: sensor/type = %q/%q, want sim1/sim", i, m.Sensor, m.Type)
		}
		if m.Seq != got[0].Seq+uint64(i) {
			t.Errorf("reading %d: seq %d, want %d", i, m.Seq, got[0].Seq+uint64(i))
		}
		if _, ok := m.Values["temperature_c"]; !ok {
			t.Errorf("reading %d: values %v lack temperature_c", i, m.Values)
		}
		stamps = append(stamps, ts)
	}
	if got[0].Seq != 1 {
		t.Errorf("first seq = %d, want 1", got[0].Seq)
	}
	// The agent's own timestamps measure the rate (the broker's delivery
	// timing plays no part), and the median ignores one late tick on a
	// loaded machine.
	var gaps []time.Duration
	for i := 1; i < len(stamps); i++ {
		gaps = append(gaps, stamps[i].Sub(stamps[i-1]))
	}
	slices.Sort(gaps)
	if med := gaps[len(gaps)/2]; med < 180*time.Millisecond || med > 220*time.Millisecond {
		t.Errorf("median interval %v (all: %v), want 200ms ±10%%", med, gaps)
	}
}

// TestStatus checks the retained online status, then offline on a clean stop.
func TestStatus(t *testing.T) {
	e := newEnv(t)
	r := e.start(e.config("dev1", simParts))
	r.waitLog(t, "msg=online", 10*time.Second)
	// A subscriber that arrives later still sees online: it is retained.
	sub := e.sub("edge/dev1/status")
	m, err := sub.NextMsg("edge/dev1/status", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st := decode[statusMsg](t, m.Payload)
	if !m.Retained || st.State != "online" || st.Role != "remote" || st.Version != "test" {
		t.Errorf("status = %+v retained=%v, want retained online/remote/test", st, m.Retained)
	}
	t0 := time.Now()
	if err := r.stop(); err != nil {
		t.Fatalf("Run returned %v on a clean stop", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("stop took %v, want under 2s", d)
	}
	p, err := sub.Next("edge/dev1/status", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st := decode[statusMsg](t, p); st.State != "offline" {
		t.Errorf("status after stop = %+v, want offline", st)
	}
	// And it stays: a new subscriber gets the retained offline.
	late := e.sub("edge/dev1/status")
	m, err = late.NextMsg("edge/dev1/status", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st := decode[statusMsg](t, m.Payload); st.State != "offline" || !m.Retained {
		t.Errorf("retained status = %+v (retained %v), want offline", st, m.Retained)
	}
}

// TestNoGoroutineLeak runs the agent through connect, commands and stop and
// checks that nothing it started is left behind.
func TestNoGoroutineLeak(t *testing.T) {
	e := newEnv(t)
	replies := e.sub("edge/dev1/reply")
	opts := goleak.IgnoreCurrent()
	r := e.start(e.config("dev1", simParts))
	r.waitLog(t, "msg=online", 10*time.Second)
	if err := e.ops.Pub(e.ctx, "edge/dev1/cmd", []byte(`{"id":"l1","action":"ping"}`), 1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := replies.Next("edge/dev1/reply", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, opts)
}

// TestRefusedPublishIsLogged points the agent at a prefix the ACL does not
// let it write: Mosquitto answers PUBACK 0x87 and the agent says so, with
// the topic and the ACL hint, instead of dropping readings silently.
func TestRefusedPublishIsLogged(t *testing.T) {
	e := newEnv(t)
	r := e.start(e.config("dev1", simParts+"[mqtt]\nprefix = \"other\"\n"))
	line := r.waitLog(t, "broker refused publish", 10*time.Second)
	for _, want := range []string{"topic=other/dev1/", "0x87", "not authorized", "pattern write other/%u/#"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %q:\n%s", want, line)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConcurrentPublishes runs eight fast sensors, whose publishes race each
// other on one connection, and checks the broker sees well-formed packets
// and the connection never drops (paho writes a packet in several Writes;
// without the write lock they interleave).
func TestConcurrentPublishes(t *testing.T) {
	e := newEnv(t)
	var parts strings.Builder
	for i := range 8 {
		fmt.Fprintf(&parts, "[[sensor]]\nname = \"s%d\"\ntype = \"sim\"\ninterval = \"10ms\"\n", i)
	}
	sub := e.sub("edge/dev1/telemetry/#")
	r := e.start(e.config("dev1", parts.String()))
	for i := range 800 {
		if _, err := sub.NextMsg("", 5*time.Second); err != nil {
			t.Fatalf("after %d messages: %v", i, err)
		}
	}
	if strings.Contains(e.broker.Log(), "malformed") || strings.Contains(r.logs.String(), "connection lost") {
		t.Errorf("connection broke under concurrent publishes")
	}
}

// TestBrokerRestart: the broker goes away and comes back on the same port
// with no memory of us; the agent reconnects, subscribes and announces
// again, and telemetry resumes.
func TestBrokerRestart(t *testing.T) {
	e := newEnv(t)
	r := e.start(e.config("dev1", simParts))
	r.waitLog(t, "msg=online", 10*time.Second)
	port := e.broker.Port
	e.broker.Stop()
	r.waitLog(t, "connection lost", 10*time.Second)
	b, err := e.fleet.Start(e.ctx, brokertest.Options{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	e.broker = b
	e.mon = e.fleet.Client(b, e.fleet.Monitor)
	e.ops = e.fleet.Client(b, e.fleet.Ops)
	sub := e.sub("edge/dev1/#")
	m, err := sub.NextMsg("edge/dev1/status", 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st := decode[statusMsg](t, m.Payload); st.State != "online" {
		t.Errorf("status after restart = %+v", st)
	}
	if _, err := sub.Next("edge/dev1/telemetry/sim1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Commands work again: the subscription was made anew.
	if err := e.ops.Pub(e.ctx, "edge/dev1/cmd", []byte(`{"id":"r1","action":"ping"}`), 1, false); err != nil {
		t.Fatal(err)
	}
	if p, err := sub.Next("edge/dev1/reply", 5*time.Second); err != nil || !strings.Contains(p, `"ok":true`) {
		t.Fatalf("reply after restart: %q, %v", p, err)
	}
}
