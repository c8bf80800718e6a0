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
	"context"
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

// discoLab is that topology, ready for the agent on B.
type discoLab struct {
	tb                   testing.TB // the lab's owner: brokers live as long as it
	fx                   *fixture
	a, b, c              *netlab.Host
	brokerCert, dev      brokertest.Creds
	broker               *brokertest.Broker
	addr                 string // the broker's address now
	hosts, cfg, cfgFixed string
}

func newDiscoLab(tb testing.TB) *discoLab {
	tb.Helper()
	if err := netlab.Available(); err != nil {
		tb.Skipf("needs network namespaces (root, iproute2): %v", err)
	}
	if _, err := os.Stat("/usr/sbin/avahi-daemon"); err != nil {
		tb.Skip("avahi-daemon not installed: run make deps (apt-get install avahi-daemon)")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		tb.Skip("openssl not installed")
	}
	l := &discoLab{fx: newFixture(tb, false), tb: tb}
	lab := netlab.New(tb)
	l.a = lab.AddHost("a", netip.MustParsePrefix("198.18.0.10/24"))
	l.b = lab.AddHost("b", netip.MustParsePrefix("198.18.0.20/24"))
	l.c = lab.AddHost("c", netip.MustParsePrefix("198.18.0.30/24"))
	fx := l.fx
	var err error
	// A: the broker, with a certificate for broker.test (and its lab IPs,
	// so mosquitto_sub -h <ip> verifies it too), and Avahi.
	if l.brokerCert, err = fx.fleet.Issue("lab-broker", pki.Template{CN: brokertest.BrokerHost, DNSNames: []string{brokertest.BrokerHost},
		IPs: []net.IP{net.ParseIP("198.18.0.10"), net.ParseIP("198.18.0.11")}, Server: true}); err != nil {
		tb.Fatal(err)
	}
	l.broker, l.addr = l.startBroker(tb, "198.18.0.10"), "198.18.0.10"
	l.a.StartAvahi(tb, map[string]string{"mqtt.service": netlab.AvahiService("MQTT on hub", "_secure-mqtt._tcp", 8883, "host=broker.test")})

	// C: the spoofer.
	self, err := pki.NewCA(brokertest.BrokerHost, 0)
	if err != nil {
		tb.Fatal(err)
	}
	sc, sk, err := self.Pair.WriteFiles(fx.dir, "spoof")
	if err != nil {
		tb.Fatal(err)
	}
	l.c.Start(tb, "openssl", "s_server", "-quiet", "-accept", "8883", "-cert", sc, "-key", sk)
	l.c.StartAvahi(tb, map[string]string{
		"a.service": netlab.AvahiService("A spoofed broker", "_secure-mqtt._tcp", 8883, "host=broker.test"),
		"b.service": netlab.AvahiService("B other host", "_secure-mqtt._tcp", 8883, "host=evil.example"),
	})

	// B: the agent's files.
	if l.dev, err = fx.fleet.Device("dev1"); err != nil {
		tb.Fatal(err)
	}
	l.hosts = filepath.Join(fx.dir, "hosts")
	if err := os.WriteFile(l.hosts, []byte("127.0.0.1\tlocalhost\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	l.cfg = filepath.Join(fx.dir, "agent-b.toml")
	l.cfgFixed = filepath.Join(fx.dir, "agent-b-fixed.toml")
	for path, how := range map[string]string{
		l.cfg:      fmt.Sprintf("discover = true\ninterfaces = [%q]\nip_version = \"4\"", l.b.Iface),
		l.cfgFixed: `address = "198.18.0.10"`,
	} {
		if err := os.WriteFile(path, []byte(agentTOML(fx, l.dev, how, l.hosts)), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return l
}

func (l *discoLab) startBroker(tb testing.TB, ip string) *brokertest.Broker {
	b, err := l.fx.fleet.Start(l.fx.ctx, brokertest.Options{CertFile: l.brokerCert.Cert, KeyFile: l.brokerCert.Key, Listen: ip, Port: 8883,
		Wrap: []string{"ip", "netns", "exec", l.a.NS}})
	if err != nil {
		tb.Fatal(err)
	}
	l.tb.Cleanup(b.Stop) // not tb's: a benchmark's rounds share the broker
	return b
}

// move stops the broker, moves host A to the other of its two addresses
// and starts the broker there; it returns the new address.
func (l *discoLab) move(tb testing.TB) string {
	to := "198.18.0.11"
	if l.addr == to {
		to = "198.18.0.10"
	}
	l.broker.Stop()
	if err := l.a.DelAddr(netip.MustParsePrefix(l.addr + "/24")); err != nil {
		tb.Fatal(err)
	}
	if err := l.a.AddAddr(netip.MustParsePrefix(to + "/24")); err != nil {
		tb.Fatal(err)
	}
	l.broker, l.addr = l.startBroker(tb, to), to
	return to
}

// waitPin returns the lab's hosts file once it pins broker.test to addr, or
// as it is after 5 s (the pin is written off the connection path).
func (l *discoLab) waitPin(addr string) string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(l.hosts)
		if strings.Contains(string(data), addr+"\tbroker.test") || time.Now().After(deadline) {
			return string(data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *discoLab) monitor(tb testing.TB) *brokertest.Sub {
	s, err := l.fx.fleet.Client(l.broker, l.fx.fleet.Monitor).Subscribe(l.fx.ctx, "edge/dev1/telemetry/#")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func TestDiscoveryInNamespaces(t *testing.T) {
	l := newDiscoLab(t)
	fx := l.fx

	// What `agent discover` sees from B: all three advertisements.
	// (--config: the interface and IP version come from the agent's config.)
	out, err := l.b.Command(fx.ctx, agentBin, "discover", "--json", "--timeout", "2s", "--config", l.cfg).Output()
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

	sub := l.monitor(t)
	t0 := time.Now()
	agent := l.b.Start(t, agentBin, "run", "--config", l.cfg)
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
		s := l.waitPin(want)
		if !strings.Contains(s, want+"\tbroker.test") || strings.Contains(s, "198.18.0.30") || strings.Contains(s, "evil") || !strings.HasPrefix(s, "127.0.0.1\tlocalhost\n") {
			t.Errorf("hosts file, want %s pinned:\n%s", want, s)
		}
	}
	checkHosts("198.18.0.10")

	// The broker moves to a new address: the connection and the pin follow.
	t1 := time.Now()
	l.move(t)
	sub = l.monitor(t)
	if _, err := sub.Next("edge/dev1/telemetry/sim1", 60*time.Second); err != nil {
		t.Fatalf("%v\nagent:\n%s", err, agent.Output())
	}
	t.Logf("followed the broker to its new address in %v", time.Since(t1))
	checkHosts("198.18.0.11")
}

// agentTOML is a lab agent's config: broker lines (how it finds the
// broker), its hosts file and one 200 ms sim sensor.
func agentTOML(fx *fixture, dev brokertest.Creds, broker, hosts string) string {
	return fmt.Sprintf(`[broker]
host = %q
port = 8883
%s
hosts_file = %q
[tls]
ca = %q
cert = %q
key = %q
[[sensor]]
name = "sim1"
type = "sim"
interval = "200ms"
`, brokertest.BrokerHost, broker, hosts, fx.fleet.CAFile, dev.Cert, dev.Key)
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

// twoHosts is a fixture (no broker yet) and hosts a (198.18.0.10) and b
// (198.18.0.20) on one bridge, or a skip when namespaces cannot be had.
func twoHosts(t *testing.T) (*fixture, *netlab.Host, *netlab.Host) {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skipf("needs network namespaces (root, iproute2): %v", err)
	}
	fx := newFixture(t, false)
	lab := netlab.New(t)
	return fx, lab.AddHost("a", netip.MustParsePrefix("198.18.0.10/24")), lab.AddHost("b", netip.MustParsePrefix("198.18.0.20/24"))
}

// TestMasterAdvertises: a master agent beside the broker advertises it
// (zeroconf), and a remote agent on another host finds and uses it.
func TestMasterAdvertises(t *testing.T) {
	fx, hostA, hostB := twoHosts(t)
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
	write := func(name, text string) string {
		p := filepath.Join(fx.dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hub, err := fx.fleet.Device("hub")
	if err != nil {
		t.Fatal(err)
	}
	master := hostA.Start(t, agentBin, "run", "--role", "master", "--config", write("hub.toml", fmt.Sprintf(`[broker]
host = %q
port = 8883
address = "198.18.0.10"
hosts_file = ""
[tls]
ca = %q
cert = %q
key = %q
[advertise]
interfaces = [%q]
instance = "Hub broker"
refresh = "1s"
`, brokertest.BrokerHost, fx.fleet.CAFile, hub.Cert, hub.Key, hostA.Iface)))
	if _, err := master.WaitOutput("advertising the broker", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	dev, err := fx.fleet.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	watch := func() *brokertest.Sub {
		sub, err := fx.fleet.Client(broker, fx.fleet.Monitor).Subscribe(fx.ctx, "edge/dev1/telemetry/#")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Stop)
		return sub
	}
	sub := watch()
	remote := hostB.Start(t, agentBin, "run", "--config", write("dev1.toml",
		agentTOML(fx, dev, fmt.Sprintf("discover = true\ninterfaces = [%q]\nip_version = \"4\"", hostB.Iface), filepath.Join(fx.dir, "hosts-b"))))
	if _, err := sub.Next("edge/dev1/telemetry/sim1", 20*time.Second); err != nil {
		t.Fatalf("%v\nremote:\n%s\nmaster:\n%s", err, remote.Output(), master.Output())
	}
	if !logHas(remote.Output(), "discovered broker", `instance="Hub broker"`, "addr=198.18.0.10:8883") {
		t.Errorf("remote did not find the master's advertisement:\n%s", remote.Output())
	}

	// The hub's address changes (DHCP): the master advertises the new one
	// and the remote follows it.
	sub.Stop()
	broker.Stop()
	if err := hostA.DelAddr(netip.MustParsePrefix("198.18.0.10/24")); err != nil {
		t.Fatal(err)
	}
	if err := hostA.AddAddr(netip.MustParsePrefix("198.18.0.11/24")); err != nil {
		t.Fatal(err)
	}
	broker = startBroker("198.18.0.11")
	sub = watch()
	if _, err := sub.Next("edge/dev1/telemetry/sim1", 30*time.Second); err != nil {
		t.Fatalf("%v\nremote:\n%s\nmaster:\n%s", err, remote.Output(), master.Output())
	}
	if !logHas(master.Output(), "advertising the broker", "198.18.0.11") {
		t.Errorf("master did not advertise again:\n%s", master.Output())
	}
}

// TestDiscoveryIPv6: with broker.ip_version = "6" the agent queries over
// IPv6 multicast, dials the broker's IPv6 address and pins it.
func TestDiscoveryIPv6(t *testing.T) {
	l := newDiscoLab(t)
	for h, p := range map[*netlab.Host]string{l.a: "fd00:18::10/64", l.b: "fd00:18::20/64"} {
		if err := h.AddAddr(netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	bc, err := l.fx.fleet.Issue("lab-broker6", pki.Template{CN: brokertest.BrokerHost, DNSNames: []string{brokertest.BrokerHost},
		IPs: []net.IP{net.ParseIP("fd00:18::10")}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	b6, err := l.fx.fleet.Start(l.fx.ctx, brokertest.Options{CertFile: bc.Cert, KeyFile: bc.Key, Listen: "fd00:18::10", Port: 8883,
		Wrap: []string{"ip", "netns", "exec", l.a.NS}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b6.Stop)
	sub, err := l.fx.fleet.Client(b6, l.fx.fleet.Monitor).Subscribe(l.fx.ctx, "edge/dev1/telemetry/#")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	data, err := os.ReadFile(l.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg6 := filepath.Join(l.fx.dir, "agent-b6.toml")
	if err := os.WriteFile(cfg6, []byte(strings.Replace(string(data), `ip_version = "4"`, `ip_version = "6"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := l.b.Start(t, agentBin, "run", "--config", cfg6)
	if _, err := sub.Next("edge/dev1/telemetry/sim1", 20*time.Second); err != nil {
		t.Fatalf("%v\nagent:\n%s", err, agent.Output())
	}
	if !logHas(agent.Output(), "discovered broker", `instance="MQTT on hub"`, "addr=[fd00:18::10]:8883") {
		t.Errorf("agent did not use the broker's IPv6 address:\n%s", agent.Output())
	}
	if s := l.waitPin("fd00:18::10"); !strings.Contains(s, "fd00:18::10\tbroker.test") {
		t.Errorf("hosts file:\n%s", s)
	}
}

// TestEnrollFindsMasterByMDNS: `agent enroll` without --server finds the
// master's EST server by its _est._tcp advertisement on another host and
// checks it against the CA file like any server.
func TestEnrollFindsMasterByMDNS(t *testing.T) {
	fx, hostA, hostB := twoHosts(t)
	caDir := filepath.Join(fx.dir, "ca")
	mustCLI(t, "ca", "init", "--dir", caDir)
	caCrt := filepath.Join(caDir, "ca.crt")
	mustCLI(t, "ca", "issue", "--dir", caDir, "--cn", "hub", "--out", filepath.Join(fx.dir, "hub"))
	conf := filepath.Join(fx.dir, "hub.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`role = "master"
[broker]
host = %q
address = "198.18.0.10"
hosts_file = ""
[tls]
ca = %q
cert = %q
key = %q
[advertise]
interfaces = [%q]
refresh = "1s"
[enroll]
listen = "198.18.0.10:8443"
ca_dir = %q
`, brokertest.BrokerHost, caCrt, filepath.Join(fx.dir, "hub.crt"), filepath.Join(fx.dir, "hub.key"), hostA.Iface, caDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	master := hostA.Start(t, agentBin, "run", "--config", conf)
	if _, err := master.WaitOutput("advertising the broker", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(mustCLI(t, "ca", "token", "--dir", caDir, "--id", "dev1"))
	out := filepath.Join(fx.dir, "dev1-tls")
	ctx, cancel := context.WithTimeout(fx.ctx, 30*time.Second)
	defer cancel()
	res, err := hostB.Command(ctx, agentBin, "enroll", "--ca", caCrt, "--token", token, "--dir", out, "--interface", hostB.Iface).CombinedOutput()
	if err != nil || !strings.Contains(string(res), "enrolled as dev1") {
		t.Fatalf("enroll by mDNS: %v\n%s\nmaster:\n%s", err, res, master.Output())
	}
	if o, err := openssl(t, "verify", "-purpose", "sslclient", "-CAfile", caCrt, filepath.Join(out, "device.crt")); err != nil {
		t.Errorf("openssl verify: %v %s", err, o)
	}
}

// TestSilentLinkLoss: the broker's host stops answering without a word (its
// interface goes down: no RST, no FIN). The agent notices within 1.5 ×
// keepalive, keeps its readings on disk, and reconnects when the link heals.
func TestSilentLinkLoss(t *testing.T) {
	fx, hostA, hostB := twoHosts(t)
	bc, err := fx.fleet.Issue("lab-broker", pki.Template{CN: brokertest.BrokerHost, DNSNames: []string{brokertest.BrokerHost}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	broker, err := fx.fleet.Start(fx.ctx, brokertest.Options{CertFile: bc.Cert, KeyFile: bc.Key, Listen: "198.18.0.10", Port: 8883,
		Wrap: []string{"ip", "netns", "exec", hostA.NS}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Stop)
	dev, err := fx.fleet.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	const keepalive = 5 * time.Second
	conf := filepath.Join(fx.dir, "dev1.toml")
	text := strings.Replace(agentTOML(fx, dev, `address = "198.18.0.10"`, ""), "[tls]",
		fmt.Sprintf("[mqtt]\nkeepalive = %q\n[buffer]\ndir = %q\n[enroll]\nrenew = false\n[tls]", keepalive, filepath.Join(fx.dir, "buf")), 1)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := hostB.Start(t, agentBin, "run", "--config", conf)
	if _, err := agent.WaitOutput("msg=online", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	if err := exec.Command("ip", "-n", hostA.NS, "link", "set", hostA.Iface, "down").Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.WaitOutput("connection lost", keepalive*3/2); err != nil {
		t.Fatalf("the silent loss was not noticed within 1.5 × keepalive (%v): %v", keepalive*3/2, err)
	}
	t.Logf("silent link loss noticed after %v (keepalive %v)", time.Since(down).Round(100*time.Millisecond), keepalive)
	if err := exec.Command("ip", "-n", hostA.NS, "link", "set", hostA.Iface, "up").Run(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	for strings.Count(agent.Output(), "msg=connected") < 2 {
		if time.Since(healed) > 30*time.Second {
			t.Fatalf("no reconnection within 30s of the link healing:\n%s", agent.Output())
		}
		time.Sleep(50 * time.Millisecond) // polling the log, bounded
	}
	t.Logf("reconnected %v after the link healed", time.Since(healed).Round(100*time.Millisecond))
}

// TestDoctorTCPFaults: `agent doctor` on host B names the TCP layer's fault
// when the broker's address has no host behind it (no route: nobody answers
// its ARP) and when packets to it vanish (a neighbour entry whose MAC
// nobody has: timeout).
func TestDoctorTCPFaults(t *testing.T) {
	for _, c := range []struct {
		name, addr, timeout string
		setup               func(t *testing.T, hostB *netlab.Host)
		want                []string
	}{
		{"no route", "198.18.0.99", "10s", nil, []string{"no route"}},
		{"timeout", "198.18.0.98", "1s", func(t *testing.T, hostB *netlab.Host) {
			if err := exec.Command("ip", "-n", hostB.NS, "neigh", "add", "198.18.0.98", "lladdr", "02:00:00:00:00:98",
				"dev", hostB.Iface, "nud", "permanent").Run(); err != nil {
				t.Fatal(err)
			}
		}, []string{"timeout", "firewall"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fx, _, hostB := twoHosts(t)
			if c.setup != nil {
				c.setup(t, hostB)
			}
			dev, err := fx.fleet.Device("dev1")
			if err != nil {
				t.Fatal(err)
			}
			conf := filepath.Join(fx.dir, "dev1.toml")
			if err := os.WriteFile(conf, []byte(agentTOML(fx, dev, fmt.Sprintf("address = %q", c.addr), "")), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(fx.ctx, 30*time.Second)
			defer cancel()
			out, err := hostB.Command(ctx, agentBin, "doctor", "--config", conf, "--timeout", c.timeout).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("doctor: %v, want exit 1:\n%s", err, out)
			}
			for _, w := range append([]string{"FAIL  tcp"}, c.want...) {
				if !strings.Contains(string(out), w) {
					t.Errorf("doctor output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestDoctorDiscovers: with broker.discover, `agent doctor` on host B finds
// the broker over real mDNS, skips the spoofer that fails verification
// (and says so), and reaches the MQTT checks.
func TestDoctorDiscovers(t *testing.T) {
	l := newDiscoLab(t)
	ctx, cancel := context.WithTimeout(l.fx.ctx, 40*time.Second)
	defer cancel()
	out, err := l.b.Command(ctx, agentBin, "doctor", "--config", l.cfg, "--json").Output()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	var rs []struct{ Check, Status, Detail, Fix string }
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	by := map[string]struct{ Status, Detail string }{}
	for _, r := range rs {
		by[r.Check] = struct{ Status, Detail string }{r.Status, r.Detail}
	}
	if r := by["resolve"]; r.Status != "pass" || !strings.Contains(r.Detail, "mDNS") {
		t.Errorf("resolve: %+v\n%s", r, out)
	}
	if r := by["tls"]; r.Status == "fail" || !strings.Contains(r.Detail, "198.18.0.10") {
		t.Errorf("tls: %+v\n%s", r, out)
	}
	if r := by["publish"]; r.Status != "pass" {
		t.Errorf("publish: %+v\n%s", r, out)
	}
}
