package main

// Discovery end to end over real mDNS, in network namespaces this test
// builds (nothing multicasts on the machine's own interfaces): three hosts
// on a bridge inside a hub namespace.
//
//	A 198.18.0.10  Mosquitto (mutual TLS) + Avahi advertising it, TXT host=broker.test
//	B 198.18.0.20  the agent, broker.discover = true, on B's interface only
//	C 198.18.0.30  a spoofer: a TLS server with a self-signed broker.test
//	              certificate, advertised by Avahi twice: TXT host=broker.test,
//	              and TXT host=evil.example
//
// (198.18.0.0/15, the benchmarking range, because this machine's own eth0
// sits in TEST-NET-1.) The agent must pin A's address, never C's, never evil.example, and its
// telemetry must reach A's Mosquitto. Then the broker moves to 198.18.0.11:
// the connection and the pin follow.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/internal/netlab"
	"github.com/edgeagent/agent/pki"
)

func TestDiscoveryInNamespaces(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Skipf("needs network namespaces (root, iproute2): %v", err)
	}
	if _, err := os.Stat("/usr/sbin/avahi-daemon"); err != nil {
		t.Skip("avahi-daemon not installed: run make deps (apt-get install avahi-daemon)")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	fx := newFixture(t, false)
	lab := netlab.New(t)
	hostA := lab.AddHost("a", netip.MustParsePrefix("198.18.0.10/24"))
	hostB := lab.AddHost("b", netip.MustParsePrefix("198.18.0.20/24"))
	hostC := lab.AddHost("c", netip.MustParsePrefix("198.18.0.30/24"))

	// A: the broker, with a certificate for broker.test (and its lab IPs,
	// so mosquitto_sub -h <ip> verifies it too), and Avahi.
	bc, err := fx.fleet.Issue("lab-broker", pki.Template{CN: brokertest.BrokerHost, DNSNames: []string{brokertest.BrokerHost},
		IPs: []net.IP{net.ParseIP("198.18.0.10"), net.ParseIP("198.18.0.11")}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	startBroker := func(ip string) *brokertest.Broker {
		b, err := fx.fleet.Start(fx.ctx, brokertest.Options{CertFile: bc.Cert, KeyFile: bc.Key, Listen: ip, Port: 8883,
			Wrap: []string{"ip", "netns", "exec", hostA.NS}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Stop)
		return b
	}
	broker := startBroker("198.18.0.10")
	hostA.StartAvahi(t, map[string]string{"mqtt.service": netlab.AvahiService("MQTT on hub", "_secure-mqtt._tcp", 8883, "host=broker.test")})

	// C: the spoofer.
	self, err := pki.NewCA(brokertest.BrokerHost, 0)
	if err != nil {
		t.Fatal(err)
	}
	sc, sk, err := self.Pair.WriteFiles(fx.dir, "spoof")
	if err != nil {
		t.Fatal(err)
	}
	hostC.Start(t, "openssl", "s_server", "-quiet", "-accept", "8883", "-cert", sc, "-key", sk)
	hostC.StartAvahi(t, map[string]string{
		"a.service": netlab.AvahiService("A spoofed broker", "_secure-mqtt._tcp", 8883, "host=broker.test"),
		"b.service": netlab.AvahiService("B other host", "_secure-mqtt._tcp", 8883, "host=evil.example"),
	})

	// B: the agent.
	dev, err := fx.fleet.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(fx.dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(fx.dir, "agent-b.toml")
	text := fmt.Sprintf(`[broker]
host = %q
port = 8883
discover = true
interfaces = [%q]
ip_version = "4"
hosts_file = %q
[tls]
ca = %q
cert = %q
key = %q
[[sensor]]
name = "sim1"
type = "sim"
interval = "200ms"
`, brokertest.BrokerHost, hostB.Iface, hosts, fx.fleet.CAFile, dev.Cert, dev.Key)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// What `agent discover` sees from B: all three advertisements.
	out, err := hostB.Command(fx.ctx, agentBin, "discover", "--json", "--timeout", "2s", "--interface", hostB.Iface, "--ip-version", "4").Output()
	if err != nil {
		t.Fatalf("agent discover: %v", err)
	}
	var listed []discovery.Service
	if err := json.Unmarshal(out, &listed); err != nil {
		t.Fatalf("agent discover --json: %v\n%s", err, out)
	}
	var names []string
	for _, s := range listed {
		names = append(names, s.Instance)
		if s.Instance == "MQTT on hub" && (s.Port != 8883 || !slices.Contains(s.Addrs, netip.MustParseAddr("198.18.0.10")) || !slices.Contains(s.TXT, "host=broker.test")) {
			t.Errorf("agent discover lists %+v", s)
		}
	}
	if !slices.Equal(names, []string{"A spoofed broker", "B other host", "MQTT on hub"}) {
		t.Errorf("agent discover lists %v", names)
	}
	mon := fx.fleet.Client(broker, fx.fleet.Monitor)
	sub, err := mon.Subscribe(fx.ctx, "edge/dev1/#")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	t0 := time.Now()
	agent := hostB.Start(t, agentBin, "run", "--config", cfg)
	if _, err := sub.Next("edge/dev1/telemetry/sim1", 20*time.Second); err != nil {
		t.Fatalf("%v\nagent:\n%s", err, agent.Output())
	}
	t.Logf("start to first telemetry with discovery: %v", time.Since(t0))
	for _, want := range [][]string{
		{"skipping advertised broker", `instance="A spoofed broker"`, "addr=198.18.0.30:8883"},
		{"ignoring advertisement", `instance="B other host"`, `names host \"evil.example\"`},
		{"discovered broker", `instance="MQTT on hub"`, "addr=198.18.0.10:8883"},
	} {
		if !logHas(agent.Output(), want...) {
			t.Errorf("agent log has no line with %q", want)
		}
	}
	checkHosts := func(want string) {
		t.Helper()
		data, _ := os.ReadFile(hosts)
		s := string(data)
		if !strings.Contains(s, want+"\tbroker.test") || strings.Contains(s, "198.18.0.30") || strings.Contains(s, "evil") || !strings.HasPrefix(s, "127.0.0.1\tlocalhost\n") {
			t.Errorf("hosts file, want %s pinned:\n%s", want, s)
		}
	}
	checkHosts("198.18.0.10")

	// The broker moves to a new address.
	sub.Stop()
	broker.Stop()
	if err := hostA.DelAddr(netip.MustParsePrefix("198.18.0.10/24")); err != nil {
		t.Fatal(err)
	}
	if err := hostA.AddAddr(netip.MustParsePrefix("198.18.0.11/24")); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	broker = startBroker("198.18.0.11")
	sub, err = fx.fleet.Client(broker, fx.fleet.Monitor).Subscribe(fx.ctx, "edge/dev1/telemetry/#")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if _, err := sub.Next("edge/dev1/telemetry/sim1", 60*time.Second); err != nil {
		t.Fatalf("%v\nagent:\n%s", err, agent.Output())
	}
	t.Logf("followed the broker to its new address in %v", time.Since(t1))
	if testing.Verbose() {
		t.Logf("agent log:\n%s", agent.Output())
	}
	checkHosts("198.18.0.11")
}

// logHas reports whether one line of log contains every part.
func logHas(log string, parts ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}
