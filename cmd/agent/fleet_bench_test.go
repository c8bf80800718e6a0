package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/sync/errgroup"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/agent/fleet"
	"github.com/edgeagent/agent/agent/operator"
	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

// simDevice is one simulated remote: an MQTT v5 connection with its own
// client certificate that keeps a retained status (will: offline), answers
// commands on its cmd topic and publishes telemetry when told to.
type simDevice struct {
	id string
	c  *paho.Client
}

func connectSim(ctx context.Context, addr string, roots *x509.CertPool, cert tls.Certificate, id string) (*simDevice, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: brokertest.BrokerHost, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	s := &simDevice{id: id}
	s.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			if p.Properties == nil || p.Properties.ResponseTopic == "" {
				return true, nil
			}
			var cmd struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(p.Payload, &cmd)
			reply, _ := json.Marshal(map[string]any{"id": cmd.ID, "ok": true, "result": map[string]any{"pong": true}})
			go func() {
				_, _ = s.c.Publish(context.Background(), &paho.Publish{Topic: p.Properties.ResponseTopic, QoS: 1, Payload: reply,
					Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData}})
			}()
			return true, nil
		}},
	})
	status := func(state string) []byte {
		return []byte(fmt.Sprintf(`{"state":%q,"role":"remote","version":"sim","ts":%q}`, state, time.Now().UTC().Format(time.RFC3339)))
	}
	if _, err := s.c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 60,
		WillMessage: &paho.WillMessage{Topic: "edge/" + id + "/status", QoS: 1, Retain: true, Payload: status("offline")}}); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "edge/" + id + "/cmd", QoS: 1}}}); err != nil {
		return nil, err
	}
	if _, err := s.c.Publish(ctx, &paho.Publish{Topic: "edge/" + id + "/status", QoS: 1, Retain: true, Payload: status("online")}); err != nil {
		return nil, err
	}
	return s, nil
}

// BenchmarkFleet1000 runs 1 000 simulated remotes, each with its own client
// certificate, on one Mosquitto, with 1 000 telemetry readings a second
// between them; then starts the master (the built binary) and measures the
// time until its retained fleet summary counts all 1 000 online, its memory
// then, and `send` round trips (operator connection → broker → device →
// broker) under that load, beside the same round trips with the fleet idle.
func BenchmarkFleet1000(b *testing.B) {
	const n = 1000
	fx := newFixture(b, false)
	broker := fx.start(brokertest.Options{})
	roots := x509.NewCertPool()
	roots.AddCert(fx.fleet.CA.Cert)
	certs := make([]tls.Certificate, n)
	for i := range certs {
		p, err := fx.fleet.CA.Issue(pki.Template{CN: fmt.Sprintf("sim%04d", i), Client: true})
		if err != nil {
			b.Fatal(err)
		}
		certs[i] = tls.Certificate{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	devs := make([]*simDevice, n)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range devs {
		g.Go(func() (err error) {
			devs[i], err = connectSim(gctx, broker.Addr, roots, certs[i], fmt.Sprintf("sim%04d", i))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d devices connected in %v", n, time.Since(start).Round(time.Millisecond))
	defer func() {
		for _, d := range devs {
			_ = d.c.Disconnect(&paho.Disconnect{})
		}
	}()

	// The master: "ops" has read-write on edge/# in the test ACL.
	conf := filepath.Join(fx.dir, "master.toml")
	text := "role = \"master\"\n" + fx.fleet.AgentConfig("ops", fx.fleet.Ops, broker.Port, "", "[enroll]\nrenew = false\n")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	opCfg, err := config.Load(conf)
	if err != nil {
		b.Fatal(err)
	}
	op, err := operator.Dial(ctx, opCfg)
	if err != nil {
		b.Fatal(err)
	}
	defer op.Close()
	rtts := func(k int) []time.Duration {
		var out []time.Duration
		for i := range k {
			r, err := op.Send(ctx, devs[(i*37)%n].id, "ping", nil, 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, r.RTT)
		}
		slices.Sort(out)
		return out
	}
	idle := rtts(200)

	// Telemetry: 1 000 readings a second across the fleet, QoS 0.
	tctx, tcancel := context.WithCancel(ctx)
	var tw sync.WaitGroup
	tw.Add(1)
	go func() {
		defer tw.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-tctx.Done():
				return
			case <-t.C:
			}
			d := devs[i%n]
			_, _ = d.c.Publish(tctx, &paho.Publish{Topic: "edge/" + d.id + "/telemetry/sim1", QoS: 0,
				Payload: []byte(`{"ts":"2026-11-23T08:00:00.000Z","sensor":"sim1","type":"sim","seq":` + strconv.Itoa(i/n+1) + `,"values":{"temperature_c":21.5}}`)})
		}
	}()
	defer func() { tcancel(); tw.Wait() }()

	mon, err := fx.fleet.Client(broker, fx.fleet.Monitor).Subscribe(ctx, "edge/ops/fleet")
	if err != nil {
		b.Fatal(err)
	}
	defer mon.Stop()
	b.ResetTimer()
	mstart := time.Now()
	master := startAgent(b, "run", "--config", conf)
	var view time.Duration
	for view == 0 {
		payload, err := mon.Next("edge/ops/fleet", time.Minute)
		if err != nil {
			b.Fatalf("no complete fleet view: %v\n%s", err, master.stderr())
		}
		var s fleet.Summary
		if json.Unmarshal([]byte(payload), &s) == nil && s.Online >= n {
			view = time.Since(mstart)
		}
	}
	loaded := rtts(500)
	b.StopTimer()
	rss, hwm := procMem(master.cmd.Process.Pid)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(view.Seconds(), "view_s")
	b.ReportMetric(rss, "master_rss_MiB")
	b.ReportMetric(hwm, "master_peak_MiB")
	b.ReportMetric(pct(loaded, 0.5), "send_p50_ms")
	b.ReportMetric(pct(loaded, 0.99), "send_p99_ms")
	b.ReportMetric(pct(idle, 0.5), "idle_send_p50_ms")
	b.ReportMetric(pct(idle, 0.99), "idle_send_p99_ms")
	b.ReportMetric(0, "ns/op")
}

// procMem returns VmRSS and VmHWM of pid in MiB.
func procMem(pid int) (rss, hwm float64) {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// flood publishes n retained statuses as "ops", one in a hundred malformed.
func flood(ctx context.Context, tb testing.TB, fx *fixture, n int) {
	tb.Helper()
	cfg, err := config.Parse("ops.toml", []byte(fx.fleet.AgentConfig("ops", fx.fleet.Ops, fx.broker.Port, "", "")))
	if err != nil {
		tb.Fatal(err)
	}
	op, err := operator.Dial(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer op.Close()
	for i := range n {
		payload := fmt.Sprintf(`{"state":"online","role":"remote","version":"1.0.%d","ts":"2026-11-23T08:00:00.000Z"}`, i)
		if i%100 == 0 {
			payload = `{"state":` // malformed
		}
		if err := op.PublishRetained(ctx, fmt.Sprintf("edge/d%05d/status", i), []byte(payload)); err != nil {
			tb.Fatal(err)
		}
	}
}
