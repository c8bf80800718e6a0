package main

// The master role with the built binary, against a Mosquitto configured by
// `agent broker-config` and nothing else: the fleet table, kill -9, agent
// send's exit codes, agent watch, the ACL between remotes, and a malformed
// status that must not disturb the master.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/agent/fleet"
	"github.com/edgeagent/agent/internal/brokertest"
)

// fleetLab is a CA directory, a broker from broker-config's output and the
// master's config.
type fleetLab struct {
	dir, caDir, caCrt, out string
	broker                 *brokertest.Broker
	port                   int
	master                 string // the master's config file
}

func newFleetLab(t *testing.T) *fleetLab {
	t.Helper()
	if err := brokertest.Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	// Mosquitto started as root drops to the mosquitto user, which must be
	// able to reach the generated files.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	l := &fleetLab{dir: dir, caDir: filepath.Join(dir, "ca"), out: filepath.Join(dir, "mosquitto"), port: freeTCPPort(t)}
	l.caCrt = filepath.Join(l.caDir, "ca.crt")
	mustCLI(t, "ca", "init", "--dir", l.caDir)
	mustCLI(t, "broker-config", "--ca-dir", l.caDir, "--host", brokertest.BrokerHost, "--san", "127.0.0.1",
		"--port", strconv.Itoa(l.port), "--bind", "127.0.0.1", "--master", "hub", "--out", l.out, "--cert-dir", l.out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	b, err := brokertest.StartConfig(ctx, filepath.Join(l.out, "agent.conf"), "127.0.0.1:"+strconv.Itoa(l.port), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	l.broker = b
	l.master = l.device(t, "hub", "role = \"master\"\n")
	return l
}

// device issues a certificate for id and writes its config.
func (l *fleetLab) device(t *testing.T, id, top string, more ...string) string {
	t.Helper()
	prefix := filepath.Join(l.dir, id)
	mustCLI(t, "ca", "issue", "--dir", l.caDir, "--cn", id, "--out", prefix)
	conf := fmt.Sprintf(`%s[broker]
host = %q
port = %d
address = "127.0.0.1"
hosts_file = ""
[tls]
ca = %q
cert = %q
key = %q
[enroll]
renew = false
[[sensor]]
name = "sim1"
type = "sim"
interval = "200ms"
[[actuator]]
name = "relay1"
type = "sim"
%s`, top, brokertest.BrokerHost, l.port, l.caCrt, prefix+".crt", prefix+".key", strings.Join(more, ""))
	path := prefix + ".toml"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (l *fleetLab) client(id string) *brokertest.Client {
	p := filepath.Join(l.dir, id)
	return &brokertest.Client{Broker: l.broker, CA: l.caCrt, Cert: p + ".crt", Key: p + ".key"}
}

// fleetJSON runs `agent fleet --json` and returns the devices by id.
func (l *fleetLab) fleetJSON(t *testing.T) map[string]fleet.Device {
	t.Helper()
	out := mustCLI(t, "fleet", "--config", l.master, "--json")
	var devs []fleet.Device
	if err := json.Unmarshal([]byte(out), &devs); err != nil {
		t.Fatalf("agent fleet --json: %v\n%s", err, out)
	}
	m := map[string]fleet.Device{}
	for _, d := range devs {
		m[d.ID] = d
	}
	return m
}

// waitFleet polls `agent fleet` until ok accepts it (bounded).
func (l *fleetLab) waitFleet(t *testing.T, what string, ok func(map[string]fleet.Device) bool) map[string]fleet.Device {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := l.fleetJSON(t)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent fleet never showed %s; last: %+v", what, m)
		}
		time.Sleep(200 * time.Millisecond) // polling a CLI, bounded by the deadline
	}
}

func TestMasterFleet(t *testing.T) {
	l := newFleetLab(t)
	master := startAgent(t, "run", "--config", l.master)
	master.waitFor(t, 10*time.Second, "msg=online")
	var remotes []*proc
	for _, id := range []string{"dev1", "dev2", "dev3"} {
		p := startAgent(t, "run", "--config", l.device(t, id, ""))
		p.waitFor(t, 10*time.Second, "msg=online")
		remotes = append(remotes, p)
	}

	m := l.waitFleet(t, "three remotes online", func(m map[string]fleet.Device) bool {
		return m["dev1"].State == "online" && m["dev2"].State == "online" && m["dev3"].State == "online"
	})
	if d := m["dev1"]; d.Version != "1.2.3-test" || d.Role != "remote" || d.CertExpires.IsZero() {
		t.Errorf("dev1 in the fleet: %+v", d)
	}
	table := mustCLI(t, "fleet", "--config", l.master)
	for _, want := range []string{"ID", "STATE", "CERT DAYS", "dev1", "dev2", "dev3", "online", "hub"} {
		if !strings.Contains(table, want) {
			t.Errorf("fleet table lacks %q:\n%s", want, table)
		}
	}

	// kill -9: the broker publishes the will, and the table says so.
	if err := remotes[2].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	l.waitFleet(t, "dev3 offline", func(m map[string]fleet.Device) bool { return m["dev3"].State == "offline" })

	// agent send: 0 on ok:true, 1 on ok:false, 3 on no reply, 2 on bad usage.
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"ping", []string{"dev1", "ping"}, 0, `"pong":true`},
		{"set", []string{"dev2", "set", "actuator=relay1", "value=true", "--json"}, 0, `"ok":true`},
		{"unknown actuator", []string{"dev1", "set", "actuator=nope", "value=on"}, 1, "nope"},
		{"dead device", []string{"dev3", "ping", "--timeout", "1s"}, 3, "no reply from dev3 within 1s"},
		{"never seen", []string{"dev9", "ping"}, 3, "not connected"},
		{"bad id", []string{"dev/1", "ping"}, 2, "not a device id"},
		{"bad arg", []string{"dev1", "set", "relay1"}, 2, "key=value"},
	} {
		t.Run("send "+c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"send", "--config", l.master}, c.args...)...)
			if code != c.code || !strings.Contains(out+errOut, c.want) {
				t.Errorf("exit %d, %q %q; want %d and %q", code, out, errOut, c.code, c.want)
			}
		})
	}

	// agent watch streams readable lines.
	t.Run("watch", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, agentBin, "watch", "dev1", "--sensor", "sim1", "--config", l.master)
		r, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		sc := bufio.NewScanner(r)
		if !sc.Scan() {
			t.Fatal("agent watch printed nothing within 10s")
		}
		if line := sc.Text(); !strings.Contains(line, "dev1/sim1 #") || !strings.Contains(line, "temperature_c=") {
			t.Errorf("watch line %q", line)
		}
	})

	// The ACL between remotes: dev1 can neither write into dev2's
	// topics nor command it (MQTT v5: PUBACK 0x87).
	t.Run("acl", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dev1 := l.client("dev1")
		if err := dev1.Pub(ctx, "edge/dev1/telemetry/x", []byte(`{}`), 1, false); err != nil {
			t.Fatalf("dev1 into its own topics: %v", err)
		}
		for _, topic := range []string{"edge/dev2/telemetry/sim1", "edge/dev2/cmd", "edge/hub/fleet"} {
			if err := dev1.Pub(ctx, topic, []byte(`{"id":"x","action":"ping"}`), 1, false); err == nil || !strings.Contains(err.Error(), "authorized") {
				t.Errorf("dev1 publishing to %s: %v; want not authorized", topic, err)
			}
		}
	})

	// A device publishing a malformed status: counted, the master goes on.
	t.Run("malformed status", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.device(t, "dev8", "")
		if err := l.client("dev8").Pub(ctx, "edge/dev8/status", []byte("\x00not json{"), 1, true); err != nil {
			t.Fatal(err)
		}
		sub, err := l.client("hub").Subscribe(ctx, "edge/hub/fleet")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		for {
			line, err := sub.Next("edge/hub/fleet", 10*time.Second)
			if err != nil {
				t.Fatalf("no fleet summary counting the malformed status: %v", err)
			}
			if strings.Contains(line, `"malformed":1`) {
				break
			}
		}
		if code, _, errOut := runCLI(t, "send", "--config", l.master, "dev1", "ping"); code != 0 {
			t.Errorf("after the malformed status: send exit %d %s", code, errOut)
		}
		select {
		case <-master.done:
			t.Fatal("the master exited")
		default:
		}
	})
}

// TestMasterRetainedFlood: 10 000 retained statuses are waiting when the
// master starts; its fleet view has them all, and malformed ones among them
// are counted, not fatal.
func TestMasterRetainedFlood(t *testing.T) {
	n := 10000
	if v := os.Getenv("FLOOD_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	fx := newFixture(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opCfg := filepath.Join(fx.dir, "ops.toml")
	if err := os.WriteFile(opCfg, []byte("role = \"master\"\n"+fx.fleet.AgentConfig("ops", fx.fleet.Ops, fx.broker.Port, "", "[enroll]\nrenew = false\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	// mosquitto_pub -l: one line a message; a line per device, each to its
	// own topic, would take 10 000 processes, so the flood goes through one
	// paho connection of the "ops" user (read-write on edge/#).
	flood(ctx, t, fx, n)
	master := startAgent(t, "run", "--config", opCfg)
	sub, err := fx.fleet.Client(fx.broker, fx.fleet.Monitor).Subscribe(ctx, "edge/ops/fleet")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	for {
		payload, err := sub.Next("edge/ops/fleet", 30*time.Second)
		if err != nil {
			t.Fatalf("no complete fleet summary: %v\n%s", err, master.stderr())
		}
		var s fleet.Summary
		if err := json.Unmarshal([]byte(payload), &s); err != nil {
			t.Fatal(err)
		}
		if s.Online == n-n/100+1 && s.Malformed >= uint64(n/100) { // +1: the master itself
			rss, _ := procMem(master.cmd.Process.Pid)
			t.Logf("master: %d online, %d malformed, RSS %.1f MiB", s.Online, s.Malformed, rss)
			return
		}
	}
}
