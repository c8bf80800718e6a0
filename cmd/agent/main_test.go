package main

// These tests run the built binary the way systemd and a person do, against
// the real Mosquitto: exit codes and messages of every refusal, the will
// after kill -9, a clean SIGTERM, and the TLS name checks.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agent-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "agent")
	// Built as it ships: static, no cgo (see the Makefile).
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=1.2.3-test", "-o", agentBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fixture struct {
	t      testing.TB
	ctx    context.Context
	dir    string
	fleet  *brokertest.Fleet
	broker *brokertest.Broker
}

func newFixture(t testing.TB, withBroker bool) *fixture {
	t.Helper()
	if err := brokertest.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	f, err := brokertest.NewFleet(dir)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{t: t, ctx: ctx, dir: dir, fleet: f}
	if withBroker {
		fx.broker = fx.start(brokertest.Options{})
	}
	return fx
}

func (fx *fixture) start(o brokertest.Options) *brokertest.Broker {
	b, err := fx.fleet.Start(fx.ctx, o)
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.t.Cleanup(b.Stop)
	return b
}

// writeConfig writes a config for device creds; port 0 uses the broker's.
func (fx *fixture) writeConfig(id string, c brokertest.Creds, port int, tlsMore, more string) string {
	fx.t.Helper()
	if port == 0 && fx.broker != nil {
		port = fx.broker.Port
	}
	text := fx.fleet.AgentConfig(id, c, port, tlsMore, `[[sensor]]
name = "sim1"
type = "sim"
interval = "200ms"
`+more)
	p := filepath.Join(fx.dir, id+"-"+fmt.Sprint(time.Now().UnixNano())+".toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		fx.t.Fatal(err)
	}
	return p
}

// runExit runs the agent to completion (bounded) and returns code and stderr.
func runExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("agent %v did not exit within 10s; stderr:\n%s", args, stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String()
}

// proc is an agent process whose stderr is watched line by line.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   strings.Builder
	lines chan string
	done  chan struct{}
}

func startAgent(t testing.TB, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(agentBin, args...), lines: make(chan string, 1024), done: make(chan struct{})}
	r, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("agent stderr:\n%s", p.stderr())
		}
	})
	return p
}

func (p *proc) stderr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.log.String() }

// logged waits until the log so far holds every want (in any lines, any
// order); unlike waitFor it does not consume lines.
func (p *proc) logged(t testing.TB, timeout time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, all := p.stderr(), true
		for _, w := range want {
			all = all && strings.Contains(s, w)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not log %q within %v", want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor returns the first log line containing all of want.
func (p *proc) waitFor(t *testing.T, timeout time.Duration, want ...string) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l := <-p.lines:
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			if ok {
				return l
			}
		case <-p.done:
			t.Fatalf("agent exited before logging %q", want)
		case <-deadline.C:
			t.Fatalf("agent did not log %q within %v", want, timeout)
		}
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(agentBin, "version").Output()
	// The version from -ldflags, then commit, date and platform
	// (internal/packaging checks them against the Makefile's build).
	if err != nil || !strings.HasPrefix(string(out), "agent 1.2.3-test (") || !strings.Contains(string(out), "linux/"+runtime.GOARCH+")") {
		t.Fatalf("agent version = %q, %v", out, err)
	}
}

// TestRefusals: each problem a person can make with the files exits 2 with
// a message naming the file and the fix, before any connection is tried.
func TestRefusals(t *testing.T) {
	fx := newFixture(t, false)
	good, err := fx.fleet.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	loose, err := fx.fleet.Device("loose")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	expired, err := fx.fleet.Issue("expired", pki.Template{CN: "expired", Client: true,
		NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2021, 3, 4, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	weak, err := fx.fleet.Issue("weak", pki.Template{CN: "weak", Client: true, RSABits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	other, err := fx.fleet.Device("other")
	if err != nil {
		t.Fatal(err)
	}
	mismatch := brokertest.Creds{Cert: good.Cert, Key: other.Key}

	cases := []struct {
		name string
		cfg  string
		want []string
	}{
		{"key readable by others", fx.writeConfig("loose", loose, 8883, "", ""), []string{loose.Key, "chmod 600"}},
		{"missing file", fx.writeConfig("dev1", brokertest.Creds{Cert: good.Cert, Key: filepath.Join(fx.dir, "nope.key")}, 8883, "", ""), []string{"nope.key"}},
		{"key does not match cert", fx.writeConfig("dev1", mismatch, 8883, "", ""), []string{good.Cert, "match"}},
		{"expired cert", fx.writeConfig("expired", expired, 8883, "", ""), []string{expired.Cert, "2021-03-04"}},
		{"RSA under 2048 bits", fx.writeConfig("weak", weak, 8883, "", ""), []string{weak.Cert, "1024", "2048"}},
		{"id differs from CN", fx.writeConfig("dev2", good, 8883, "", ""), []string{`id "dev2"`, `"dev1"`, good.Cert}},
		{"unknown key", fx.writeConfig("dev1", good, 8883, "", "[mqtt]\nprefixx = \"x\"\n"), []string{`unknown key "mqtt.prefixx"`}},
		{"invalid value", fx.writeConfig("dev1", good, 8883, "", "[mqtt]\nkeepalive = \"soon\"\n"), []string{"keepalive", `"soon" is not a duration`}},
		{"unknown sensor type", fx.writeConfig("dev1", good, 8883, "", "[[sensor]]\nname = \"t1\"\ntype = \"thermo\"\n"), []string{`unknown type "thermo"`, "known: aht20, bh1750, bme280"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runExit(t, "run", "--config", tc.cfg)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "PRIVATE KEY") {
				t.Errorf("stderr leaks key material:\n%s", stderr)
			}
		})
	}
	t.Run("missing config file", func(t *testing.T) {
		code, stderr := runExit(t, "run", "--config", filepath.Join(fx.dir, "absent.toml"))
		if code != 2 || !strings.Contains(stderr, "absent.toml") {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	// A master without the pieces it needs, with the role from --role.
	for _, c := range []struct {
		name, more string
		want       []string
	}{
		{"enrollment without ca_dir", "[enroll]\nlisten = \"127.0.0.1:18443\"\n", []string{"enroll.listen", "needs enroll.ca_dir", "agent ca init"}},
		{"ca_dir that is not a CA", "[enroll]\nlisten = \"127.0.0.1:18443\"\nca_dir = \"" + fx.dir + "\"\n", []string{"enroll.ca_dir", "agent ca init --dir"}},
		{"crl without ca_dir", "[crl]\nfile = \"/tmp/x.crl\"\n", []string{"crl.file", "needs enroll.ca_dir"}},
	} {
		t.Run("master "+c.name, func(t *testing.T) {
			code, stderr := runExit(t, "run", "--role", "master", "--config", fx.writeConfig("dev1", good, 8883, "", c.more))
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
	t.Run("bad role flag", func(t *testing.T) {
		code, stderr := runExit(t, "run", "--config", fx.writeConfig("dev1", good, 8883, "", ""), "--role", "boss")
		if code != 2 || !strings.Contains(stderr, `"boss"`) {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})
}

// TestSignalsAndWill: SIGTERM and SIGINT publish offline and exit 0 within 2 s;
// kill -9 leaves the broker to publish the will, which says offline.
func TestSignalsAndWill(t *testing.T) {
	fx := newFixture(t, true)
	c, err := fx.fleet.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	mon := fx.fleet.Client(fx.broker, fx.fleet.Monitor)
	sub, err := mon.Subscribe(fx.ctx, "edge/dev1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	cfg := fx.writeConfig("dev1", c, 0, "", "")

	nextState := func(want string) {
		t.Helper()
		p, err := sub.Next("edge/dev1/status", 10*time.Second)
		if err != nil {
			t.Fatalf("waiting for %s: %v\nbroker log:\n%s", want, err, fx.broker.Log())
		}
		if !strings.Contains(p, `"state":"`+want+`"`) || !strings.Contains(p, `"version":"1.2.3-test"`) {
			t.Fatalf("status = %s, want %s", p, want)
		}
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startAgent(t, "run", "--config", cfg)
			nextState("online")
			t0 := time.Now()
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				t.Fatalf("agent still running 5s after %v", sig)
			}
			err := p.cmd.Wait()
			if el := time.Since(t0); el > 2*time.Second {
				t.Errorf("exit took %v after %v, want under 2s", el, sig)
			}
			if err != nil {
				t.Errorf("exit after %v: %v, want status 0", sig, err)
			}
			nextState("offline")
		})
	}
	t.Run("kill -9", func(t *testing.T) {
		p := startAgent(t, "run", "--config", cfg)
		nextState("online")
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		nextState("offline") // the will, published by Mosquitto
	})
}

// TestLegacyCN: a broker certificate with the name only in its CN (as the
// seed tutorials make them) is refused with the reason and the fix, and
// accepted with tls.legacy_cn = true.
func TestLegacyCN(t *testing.T) {
	fx := newFixture(t, false)
	legacy, err := fx.fleet.Issue("legacy-broker", pki.Template{CN: brokertest.BrokerHost, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	fx.broker = fx.start(brokertest.Options{CertFile: legacy.Cert, KeyFile: legacy.Key})
	c, err := fx.fleet.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "run", "--config", fx.writeConfig("dev1", c, 0, "", ""))
	line := p.waitFor(t, 10*time.Second, "broker connection failed")
	for _, w := range []string{"subjectAltName", "legacy_cn"} {
		if !strings.Contains(line, w) {
			t.Errorf("refusal lacks %q: %s", w, line)
		}
	}
	p2 := startAgent(t, "run", "--config", fx.writeConfig("dev1", c, 0, "legacy_cn = true", ""))
	p2.waitFor(t, 10*time.Second, "msg=online")
}

// TestConnectErrors: each connection failure is logged with its cause, and
// the agent keeps retrying.
func TestConnectErrors(t *testing.T) {
	fx := newFixture(t, true)
	c, err := fx.fleet.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		p := startAgent(t, "run", "--config", fx.writeConfig("dev1", c, port, "", ""))
		t.Log(p.waitFor(t, 10*time.Second, "broker connection failed", "connection refused"))
		p.waitFor(t, 10*time.Second, "retrying broker connection", "attempt=2")
		t.Log(p.waitFor(t, 10*time.Second, "broker connection failed", "connection refused"))
	})
	t.Run("broker cert for another name", func(t *testing.T) {
		wrong, err := fx.fleet.Issue("wrong-broker", pki.Template{CN: "mqtt.example", DNSNames: []string{"mqtt.example", "other.example"}, Server: true})
		if err != nil {
			t.Fatal(err)
		}
		b := fx.start(brokertest.Options{CertFile: wrong.Cert, KeyFile: wrong.Key})
		p := startAgent(t, "run", "--config", fx.writeConfig("dev1", c, b.Port, "", ""))
		t.Log(p.waitFor(t, 10*time.Second, "broker connection failed", "mqtt.example", "other.example"))
	})
	t.Run("broker cert from another CA", func(t *testing.T) {
		other, err := pki.NewCA("Other CA", 0)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := other.Issue(pki.Template{CN: brokertest.BrokerHost, DNSNames: []string{brokertest.BrokerHost}, Server: true})
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := p2.WriteFiles(fx.dir, "other-ca-broker")
		if err != nil {
			t.Fatal(err)
		}
		b := fx.start(brokertest.Options{CertFile: cert, KeyFile: key})
		p := startAgent(t, "run", "--config", fx.writeConfig("dev1", c, b.Port, "", ""))
		t.Log(p.waitFor(t, 10*time.Second, "broker connection failed", "Other CA"))
	})
	t.Run("our cert from a CA the broker does not trust", func(t *testing.T) {
		// The agent trusts a bundle with both CAs, so its own checks pass;
		// the broker knows only the fleet CA and answers alert 48.
		other, err := pki.NewCA("Other CA", 0)
		if err != nil {
			t.Fatal(err)
		}
		foreign, bundle, err := fx.fleet.Foreign("dev1", other)
		if err != nil {
			t.Fatal(err)
		}
		cfg := fx.writeConfig("dev1", foreign, 0, "", "")
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, []byte(strings.Replace(string(data), fx.fleet.CAFile, bundle, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startAgent(t, "run", "--config", cfg)
		t.Log(p.waitFor(t, 10*time.Second, "broker connection failed", "unknown certificate authority"))
	})
	t.Run("our cert revoked", func(t *testing.T) {
		dev, err := fx.fleet.Device("revoked1")
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := pki.ParseCertFile(dev.Cert)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := fx.fleet.CA.RevocationList([]*x509.Certificate{leaf}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		crlPath := filepath.Join(fx.dir, "fleet.crl")
		if err := os.WriteFile(crlPath, crl, 0o644); err != nil {
			t.Fatal(err)
		}
		b := fx.start(brokertest.Options{Extra: "crlfile " + crlPath + "\n"})
		p := startAgent(t, "run", "--config", fx.writeConfig("revoked1", dev, b.Port, "", ""))
		t.Log(p.waitFor(t, 10*time.Second, "broker connection failed", "revoked"))
	})
	t.Run("name does not resolve", func(t *testing.T) {
		cfg := fx.writeConfig("dev1", c, 0, "", "")
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, []byte(strings.Replace(string(data), `address = "127.0.0.1"`, `address = "broker.invalid"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startAgent(t, "run", "--config", cfg)
		t.Log(p.waitFor(t, 15*time.Second, "broker connection failed", "broker.invalid", "/etc/hosts"))
	})
}

// TestSensorsCommand: `agent sensors` probes each configured sensor once and
// says which work; a sensor whose bus is absent fails with the bus named.
func TestSensorsCommand(t *testing.T) {
	fx := newFixture(t, false)
	c, err := fx.fleet.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fx.writeConfig("dev1", c, 8883, "", "[[sensor]]\nname = \"t9\"\ntype = \"bme280\"\nbus = \"7\"\n")
	cmd := exec.Command(agentBin, "sensors", "--config", cfg)
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	s := string(out)
	if code != 1 || !logHas(s, "sim1", "ok", "temperature_c") || !logHas(s, "t9", "bme280", "FAIL", `"7"`) {
		t.Errorf("agent sensors exit %d:\n%s", code, s)
	}
}

// TestReloadConfig: SIGHUP with a config that changes more than the
// credentials builds the agent again from it (a new sensor reports) without
// the fleet ever seeing this device offline; a config the new agent refuses
// leaves it running on the previous one; a file that does not parse is
// refused and changes nothing.
func TestReloadConfig(t *testing.T) {
	fx := newFixture(t, true)
	dev, err := fx.fleet.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(fx.dir, "reload.toml")
	write := func(more string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(fx.fleet.AgentConfig("dev1", dev, fx.broker.Port, "", "[[sensor]]\nname = \"sim1\"\ntype = \"sim\"\ninterval = \"100ms\"\n"+more)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	sub, err := fx.fleet.Client(fx.broker, fx.fleet.Monitor).Subscribe(fx.ctx, "edge/dev1/#")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	p := startAgent(t, "run", "--config", conf)
	p.logged(t, 10*time.Second, "msg=online")
	hup := func() {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	// A second sensor: the agent is built again and sim2 reports.
	write("[[sensor]]\nname = \"sim2\"\ntype = \"sim\"\ninterval = \"100ms\"\n")
	hup()
	deadline := time.Now().Add(15 * time.Second)
	for sim2 := false; !sim2; {
		m, err := sub.NextMsg("", time.Until(deadline))
		if err != nil {
			t.Fatalf("no telemetry from sim2 after the reload: %v\n%s", err, p.stderr())
		}
		if m.Topic == "edge/dev1/status" && strings.Contains(m.Payload, `"offline"`) {
			t.Fatalf("the reload showed the device offline: %s", m.Payload)
		}
		sim2 = m.Topic == "edge/dev1/telemetry/sim2"
	}
	p.logged(t, 5*time.Second, "SIGHUP: the new config is in use")

	// A config the new agent refuses (an unknown sensor type): back to the
	// previous one.
	write("[[sensor]]\nname = \"t1\"\ntype = \"thermo\"\n")
	hup()
	p.logged(t, 10*time.Second, "the new config is refused; running on with the previous one")
	if _, err := sub.Next("edge/dev1/telemetry/sim2", 10*time.Second); err != nil {
		t.Fatalf("the previous config is not running again: %v\n%s", err, p.stderr())
	}

	// A file that does not parse (an unknown top-level key): refused,
	// nothing restarts.
	write("")
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, append([]byte("bogus = 1\n"), data...), 0o644); err != nil {
		t.Fatal(err)
	}
	hup()
	p.logged(t, 5*time.Second, "SIGHUP: reload refused")
	if _, err := sub.Next("edge/dev1/telemetry/sim2", 5*time.Second); err != nil {
		t.Fatalf("the agent stopped after a refused reload: %v", err)
	}
}
