package main

// Benchmarks behind `make bench`. Each reports the agent's figure beside a
// reference measured in the same run, against the same real broker:
//
//	StartToFirstTelemetry/agent         process start → first telemetry seen by a subscriber
//	StartToFirstTelemetry/mosquitto_pub process start → its message seen (a C client's floor)
//	CommandRoundTrip/agent              ping → reply through the broker (p50/p99)
//	CommandRoundTrip/broker_echo        one publish → the same client (the broker's floor)
//	CommandRoundTrip/agent_nagle        the agent with Mosquitto's default set_tcp_nodelay false
//	SteadyRSS/agent                     RSS with 5 sim sensors at 1 Hz after 10 s
//	SteadyRSS/mosquitto_sub             RSS of an idle mosquitto_sub (a C client)

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/internal/requester"
)

type benchEnv struct {
	*fixture
	dev brokertest.Creds
	req *requester.Requester
}

func newBenchEnv(b *testing.B, o brokertest.Options, subs ...string) *benchEnv {
	if err := brokertest.Available(); err != nil {
		b.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	dir := b.TempDir()
	f, err := brokertest.NewFleet(dir)
	if err != nil {
		b.Fatal(err)
	}
	br, err := f.Start(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(br.Stop)
	dev, err := f.Device("dev1")
	if err != nil {
		b.Fatal(err)
	}
	req, err := requester.New(ctx, f, br, f.Ops, "edge/dev1/reply/bench", subs...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(req.Close)
	return &benchEnv{fixture: &fixture{ctx: ctx, dir: dir, fleet: f, broker: br}, dev: dev, req: req}
}

func (e *benchEnv) config(b *testing.B, sensors string) string {
	text := e.fleet.AgentConfig("", e.dev, e.broker.Port, "", sensors)
	p := e.dir + "/bench.toml"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

func sensorsTOML(n int, interval string) string {
	var s strings.Builder
	for i := range n {
		fmt.Fprintf(&s, "[[sensor]]\nname = \"sim%d\"\ntype = \"sim\"\ninterval = %q\n", i+1, interval)
	}
	return s.String() + "[[actuator]]\nname = \"relay1\"\ntype = \"sim\"\n"
}

func (e *benchEnv) waitTopic(b *testing.B, prefix string) time.Time {
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-e.req.Messages:
			if strings.HasPrefix(m.Topic, prefix) {
				return m.At
			}
		case <-deadline:
			b.Fatalf("nothing on %s within 10s", prefix)
		}
	}
}

func (e *benchEnv) drain() {
	for {
		select {
		case <-e.req.Messages:
		default:
			return
		}
	}
}

func stopProc(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func BenchmarkStartToFirstTelemetry(b *testing.B) {
	e := newBenchEnv(b, brokertest.Options{}, "edge/dev1/telemetry/#", "edge/bench/pub")
	cfg := e.config(b, sensorsTOML(1, "200ms"))
	b.Run("agent", func(b *testing.B) {
		var total time.Duration
		for range b.N {
			e.drain()
			cmd := exec.Command(agentBin, "run", "--config", cfg)
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			total += e.waitTopic(b, "edge/dev1/telemetry/").Sub(t0)
			stopProc(cmd)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/first-telemetry")
	})
	b.Run("mosquitto_pub", func(b *testing.B) {
		var total time.Duration
		for range b.N {
			e.drain()
			cmd := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(e.broker.Port), "--cafile", e.fleet.CAFile,
				"--cert", e.fleet.Ops.Cert, "--key", e.fleet.Ops.Key, "-V", "mqttv5", "-q", "1", "-t", "edge/bench/pub", "-m", "x")
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			total += e.waitTopic(b, "edge/bench/pub").Sub(t0)
			_ = cmd.Wait()
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/first-telemetry")
	})
}

// roundTrips calls topic b.N times and reports p50/p99 in ms.
func roundTrips(b *testing.B, req *requester.Requester, ctx context.Context, topic string, payload func(i int) []byte) {
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, rtt, err := req.Call(cctx, topic, payload(i))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, rtt)
	}
	b.StopTimer()
	slices.Sort(rtts)
	q := func(p float64) float64 { return float64(rtts[int(p*float64(len(rtts)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "ms-p50")
	b.ReportMetric(q(0.99), "ms-p99")
}

func BenchmarkCommandRoundTrip(b *testing.B) {
	for _, v := range []struct {
		name  string
		nagle bool
		agent bool
	}{{"agent", false, true}, {"broker_echo", false, false}, {"agent_nagle", true, true}} {
		b.Run(v.name, func(b *testing.B) {
			e := newBenchEnv(b, brokertest.Options{KeepNagle: v.nagle})
			if !v.agent {
				// The requester's own reply topic: one hop through the broker and back.
				roundTrips(b, e.req, e.ctx, "edge/dev1/reply/bench", func(int) []byte { return []byte("x") })
				return
			}
			cmd := exec.Command(agentBin, "run", "--config", e.config(b, sensorsTOML(1, "1s")))
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer stopProc(cmd)
			// Wait until it answers.
			deadline := time.Now().Add(10 * time.Second)
			for {
				cctx, cancel := context.WithTimeout(e.ctx, 500*time.Millisecond)
				_, _, err := e.req.Call(cctx, "edge/dev1/cmd", []byte(`{"id":"warm","action":"ping"}`))
				cancel()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					b.Fatal("agent does not answer")
				}
			}
			roundTrips(b, e.req, e.ctx, "edge/dev1/cmd", func(i int) []byte { return fmt.Appendf(nil, `{"id":"b%d","action":"ping"}`, i) })
		})
	}
}

func rssMiB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

func BenchmarkSteadyRSS(b *testing.B) {
	e := newBenchEnv(b, brokertest.Options{}, "edge/dev1/telemetry/#")
	b.Run("agent", func(b *testing.B) {
		cmd := exec.Command(agentBin, "run", "--config", e.config(b, sensorsTOML(5, "1s")))
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer stopProc(cmd)
		// 10 s of telemetry: 5 sensors at 1 Hz, 50 readings.
		for range 50 {
			e.waitTopic(b, "edge/dev1/telemetry/")
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(rssMiB(cmd.Process.Pid), "MiB-RSS")
	})
	b.Run("mosquitto_sub", func(b *testing.B) {
		c := e.fleet.Client(e.broker, e.fleet.Monitor)
		s, err := c.Subscribe(e.ctx, "edge/dev1/telemetry/#")
		if err != nil {
			b.Fatal(err)
		}
		defer s.Stop()
		pid := s.Pid()
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(rssMiB(pid), "MiB-RSS")
	})
}

// BenchmarkDiscovery runs in the namespace lab of TestDiscoveryInNamespaces
// (Avahi, a spoofer, the broker on host A, the agent on host B):
//
//	StartToFirstTelemetry/discover       agent start → first telemetry, broker found by mDNS
//	StartToFirstTelemetry/fixed_address  the same with broker.address set (the reference)
//	FollowMove                           broker moved to a new address → first telemetry there
func BenchmarkDiscovery(b *testing.B) {
	l := newDiscoLab(b)
	for _, v := range []struct{ name, cfg string }{{"discover", l.cfg}, {"fixed_address", l.cfgFixed}} {
		b.Run("StartToFirstTelemetry/"+v.name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				sub := l.monitor(b)
				t0 := time.Now()
				p := l.b.Start(b, agentBin, "run", "--config", v.cfg)
				if _, err := sub.Next("edge/dev1/telemetry/sim1", 20*time.Second); err != nil {
					b.Fatalf("%v\n%s", err, p.Output())
				}
				total += time.Since(t0)
				_ = p.Stop()
				sub.Stop()
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/first-telemetry")
		})
	}
	b.Run("FollowMove", func(b *testing.B) {
		p := l.b.Start(b, agentBin, "run", "--config", l.cfg)
		sub := l.monitor(b)
		if _, err := sub.Next("edge/dev1/telemetry/sim1", 20*time.Second); err != nil {
			b.Fatalf("%v\n%s", err, p.Output())
		}
		sub.Stop()
		var total time.Duration
		for range b.N {
			t0 := time.Now()
			l.move(b)
			sub := l.monitor(b)
			if _, err := sub.Next("edge/dev1/telemetry/sim1", 60*time.Second); err != nil {
				b.Fatalf("%v\n%s", err, p.Output())
			}
			total += time.Since(t0)
			sub.Stop()
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/follow")
	})
}
