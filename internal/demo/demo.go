// Package demo is `make demo`: a throwaway PKI, a local Mosquitto with
// mutual TLS and the fleet ACL, and a remote agent with simulated sensors,
// with its telemetry (as mosquitto_sub sees it) and command round trips
// printed until Ctrl-C or the time limit.
package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/internal/requester"
)

// Options for one demo run.
type Options struct {
	AgentBin string        // the agent binary to run
	Duration time.Duration // 0: until ctx ends
	Out      io.Writer
	Keep     bool // keep the temp dir
}

// Run runs the demo until ctx ends or Duration passes.
func Run(ctx context.Context, o Options) error {
	if err := brokertest.Available(); err != nil {
		return err
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(o.Out, format+"\n", a...)
	}
	dir, err := os.MkdirTemp("", "agent-demo-")
	if err != nil {
		return err
	}
	if !o.Keep {
		defer os.RemoveAll(dir)
	}
	fleet, err := brokertest.NewFleet(dir)
	if err != nil {
		return err
	}
	dev, err := fleet.Device("dev1")
	if err != nil {
		return err
	}
	say("== throwaway PKI in %s", dir)
	say("   ca.crt, broker.crt (SAN DNS:%s), dev1.crt (CN=dev1, key 0600)", brokertest.BrokerHost)
	bctx := context.WithoutCancel(ctx)
	broker, err := fleet.Start(bctx, brokertest.Options{})
	if err != nil {
		return err
	}
	defer broker.Stop()
	say("== Mosquitto with mutual TLS on %s (require_certificate, ACL: pattern write edge/%%u/#, pattern read edge/%%u/cmd)", broker.Addr)

	cfgPath := filepath.Join(dir, "agent.toml")
	cfg := fleet.AgentConfig("", dev, broker.Port, "", fmt.Sprintf("[buffer]\ndir = %q\n", filepath.Join(dir, "buffer"))+`[[sensor]]
name = "sim1"
type = "sim"
interval = "1s"
[[sensor]]
name = "sim2"
type = "sim"
interval = "2s"
[[actuator]]
name = "relay1"
type = "sim"
`)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}

	mon := fleet.Client(broker, fleet.Monitor)
	sub, err := mon.Subscribe(bctx, "edge/#")
	if err != nil {
		return err
	}
	defer sub.Stop()
	offline := make(chan struct{})
	go func() {
		var once sync.Once
		for line := range sub.Lines {
			m := brokertest.ParseMsg(line)
			if s := describe(m); s != "" {
				say("%s", s)
			}
			if m.Topic == "edge/dev1/status" && strings.Contains(m.Payload, `"offline"`) {
				once.Do(func() { close(offline) })
			}
		}
	}()

	say("== agent run --config %s", cfgPath)
	agent := exec.Command(o.AgentBin, "run", "--config", cfgPath)
	stderr, err := agent.StderrPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := agent.Start(); err != nil {
		return fmt.Errorf("start %s: %w (run make build first)", o.AgentBin, err)
	}
	agentDone := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			say("   agent │ %s", sc.Text())
		}
		close(agentDone)
	}()
	stopAgent := func() {
		_ = agent.Process.Signal(syscall.SIGTERM)
		select {
		case <-agentDone:
		case <-time.After(5 * time.Second):
			_ = agent.Process.Kill()
			<-agentDone
		}
		_ = agent.Wait()
	}

	req, err := requester.New(bctx, fleet, broker, fleet.Ops, "edge/dev1/reply/demo")
	if err != nil {
		stopAgent()
		return err
	}
	defer req.Close()
	cmds := []string{
		`{"id":"demo-%d","action":"ping"}`,
		`{"id":"demo-%d","action":"set","args":{"actuator":"relay1","value":true}}`,
		`{"id":"demo-%d","action":"read","args":{"sensor":"sim1"}}`,
		`{"id":"demo-%d","action":"set","args":{"actuator":"relay1","value":false}}`,
		`{"id":"demo-%d","action":"set","args":{"actuator":"relay1","value":"maybe"}}`,
	}
	say("== every 3 s a command as user ops, the same as:")
	say("   mosquitto_pub -h 127.0.0.1 -p %d --cafile %s --cert %s --key %s -V mqttv5 \\", broker.Port, fleet.CAFile, fleet.Ops.Cert, fleet.Ops.Key)
	say("     -t edge/dev1/cmd -D publish response-topic edge/dev1/reply/demo -q 1 -m '{\"id\":\"c1\",\"action\":\"ping\"}'")
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	n := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-agentDone:
			say("== the agent exited")
			break loop
		case <-tick.C:
		}
		payload := fmt.Sprintf(cmds[n%len(cmds)], n+1)
		n++
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		reply, rtt, err := req.Call(cctx, "edge/dev1/cmd", []byte(payload))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			say("command  → %s: %v", payload, err)
			continue
		}
		say("command  → %s", payload)
		say("reply    ← %s   (round trip %.2f ms)", reply, float64(rtt.Microseconds())/1000)
	}
	say("== stopping the agent (SIGTERM) after %s", time.Since(start).Round(time.Second))
	stopAgent()
	// Let the monitor print the offline status before the broker goes.
	select {
	case <-offline:
	case <-time.After(2 * time.Second):
		say("== no offline status seen within 2 s")
	}
	say("== done")
	return nil
}

// describe renders one message the monitor saw.
func describe(m brokertest.Msg) string {
	parts := strings.Split(m.Topic, "/")
	if len(parts) >= 3 && parts[2] == "telemetry" {
		var t struct {
			Sensor string             `json:"sensor"`
			Seq    uint64             `json:"seq"`
			Values map[string]float64 `json:"values"`
		}
		if json.Unmarshal([]byte(m.Payload), &t) == nil {
			keys := make([]string, 0, len(t.Values))
			for k := range t.Values {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var b strings.Builder
			for _, k := range keys {
				fmt.Fprintf(&b, " %s=%.2f", k, t.Values[k])
			}
			return fmt.Sprintf("telemetry %-5s seq=%-4d%s", t.Sensor, t.Seq, b.String())
		}
	}
	kind := "message"
	if len(parts) >= 3 {
		kind = parts[2]
	}
	if kind == "cmd" || kind == "reply" {
		return "" // the command lines show these with their timing
	}
	r := ""
	if m.Retained {
		r = " (retained)"
	}
	return fmt.Sprintf("%-9s %s %s%s", kind, m.Topic, m.Payload, r)
}
