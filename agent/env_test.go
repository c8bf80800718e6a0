package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/internal/testlog"
)

// env is one real Mosquitto with mutual TLS and the fleet ACL, a throwaway
// PKI, and independent mosquitto_sub/pub clients: "monitor" reads all, "ops"
// sends commands.
type env struct {
	t        testing.TB
	ctx      context.Context
	fleet    *brokertest.Fleet
	broker   *brokertest.Broker
	mon, ops *brokertest.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	if err := brokertest.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	f, err := brokertest.NewFleet(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Start(ctx, brokertest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return &env{t: t, ctx: ctx, fleet: f, broker: b, mon: f.Client(b, f.Monitor), ops: f.Client(b, f.Ops)}
}

// config writes credentials for id and returns a parsed config; more is
// extra TOML appended (sensors, actuators, overrides).
func (e *env) config(id, more string) *config.Config {
	e.t.Helper()
	c, err := e.fleet.Device(id)
	if err != nil {
		e.t.Fatal(err)
	}
	text := e.fleet.AgentConfig(id, c, e.broker.Port, "", more)
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

const simParts = `
[[sensor]]
name = "sim1"
type = "sim"
interval = "200ms"
[[actuator]]
name = "relay1"
type = "sim"
`

// syncBuf is a log sink tests can read while the agent writes.
type syncBuf = testlog.Buffer

type running struct {
	d      *Daemon
	logs   *syncBuf
	cancel context.CancelFunc
	done   chan error
}

func (e *env) start(cfg *config.Config) *running { return e.startOpts(cfg, Options{}) }

// startOpts runs the agent with o (Config, Version and Logger are set here).
func (e *env) startOpts(cfg *config.Config, o Options) *running {
	e.t.Helper()
	logs := &syncBuf{}
	o.Config, o.Version = cfg, "test"
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	r := &running{d: d, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	e.t.Cleanup(func() {
		r.stop()
		if e.t.Failed() {
			e.t.Logf("agent log:\n%s\nbroker log:\n%s", logs.String(), e.broker.Log())
		}
	})
	return r
}

// stop cancels the agent and returns Run's error (bounded).
func (r *running) stop() error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if !ok {
			return nil
		}
		close(r.done)
		return err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("agent did not stop within 5s")
	}
}

// waitLog polls the agent's log for substr until timeout.
func (r *running) waitLog(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := r.logs.String()
		if i := strings.Index(s, substr); i >= 0 {
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				end = len(s) - i
			}
			return s[strings.LastIndexByte(s[:i], '\n')+1 : i+end]
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent log has no %q within %v:\n%s", substr, timeout, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) sub(topics ...string) *brokertest.Sub {
	e.t.Helper()
	s, err := e.mon.Subscribe(e.ctx, topics...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Stop)
	return s
}

func decode[T any](t *testing.T, payload string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("payload %s: %v", payload, err)
	}
	return v
}
