package doctor_test

// Every fault here is built for real against Debian's Mosquitto (package
// brokertest): the files, the brokers and their certificates are the ones a
// board would meet; only the clock, the resolver and the hosts file are
// injected.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/agent/doctor"
	"github.com/edgeagent/agent/cmd/agent/cli"
	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

type fixture struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	fleet  *brokertest.Fleet
	broker *brokertest.Broker
	dev    brokertest.Creds
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if err := brokertest.Available(); err != nil {
		t.Skipf("doctor tests need the real broker: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	f, err := brokertest.NewFleet(dir)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{t: t, ctx: ctx, dir: dir, fleet: f}
	fx.broker = fx.start(brokertest.Options{})
	if fx.dev, err = f.Device("dev1"); err != nil {
		t.Fatal(err)
	}
	return fx
}

func (fx *fixture) start(o brokertest.Options) *brokertest.Broker {
	fx.t.Helper()
	b, err := fx.fleet.Start(fx.ctx, o)
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.t.Cleanup(b.Stop)
	return b
}

func (fx *fixture) issue(name string, tmpl pki.Template) brokertest.Creds {
	fx.t.Helper()
	c, err := fx.fleet.Issue(name, tmpl)
	if err != nil {
		fx.t.Fatal(err)
	}
	return c
}

// config is the agent config for creds against port (0: the fleet's broker).
func (fx *fixture) config(id string, c brokertest.Creds, port int, tlsMore string) *config.Config {
	fx.t.Helper()
	if port == 0 {
		port = fx.broker.Port
	}
	cfg, err := config.Parse("agent.toml", []byte(fx.fleet.AgentConfig(id, c, port, tlsMore,
		fmt.Sprintf("[buffer]\ndir = %q\n", filepath.Join(fx.dir, "buffer-"+id)))))
	if err != nil {
		fx.t.Fatal(err)
	}
	return cfg
}

// resolver answers broker.test with 127.0.0.1 and nothing else.
func resolver(_ context.Context, host string) ([]string, error) {
	if host == brokertest.BrokerHost {
		return []string{"127.0.0.1"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func noResolver(_ context.Context, host string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// opts are the tests' options: the injected resolver, and an empty /proc
// so the service check does not depend on the machine running the tests.
func opts() doctor.Options {
	return doctor.Options{LookupHost: resolver, Timeout: 5 * time.Second, ProcRoot: "testdata/proc-empty"}
}

func dump(rs []doctor.Result) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("  " + r.Status + " " + r.Check + ": " + r.Detail)
		if r.Fix != "" {
			b.WriteString("\n      fix: " + r.Fix)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// firstFail returns the first failing result, or a zero Result.
func firstFail(rs []doctor.Result) doctor.Result {
	for _, r := range rs {
		if r.Status == doctor.Fail {
			return r
		}
	}
	return doctor.Result{}
}

// checkShape: one result per check, in order, and every one after the first
// failure skipped.
func checkShape(t *testing.T, rs []doctor.Result) {
	t.Helper()
	if len(rs) != len(doctor.Checks) {
		t.Fatalf("%d results, want %d:\n%s", len(rs), len(doctor.Checks), dump(rs))
	}
	failed := false
	for i, r := range rs {
		if r.Check != doctor.Checks[i] {
			t.Errorf("result %d is %q, want %q", i, r.Check, doctor.Checks[i])
		}
		if failed && r.Status != doctor.Skip {
			t.Errorf("%s is %s after a failure, want skip", r.Check, r.Status)
		}
		if (r.Status == doctor.Warn || r.Status == doctor.Fail) && r.Fix == "" {
			t.Errorf("%s is %s without a fix", r.Check, r.Status)
		}
		failed = failed || r.Status == doctor.Fail
	}
}

func TestHealthy(t *testing.T) {
	fx := newFixture(t)
	rs := doctor.Run(fx.ctx, fx.config("dev1", fx.dev, 0, ""), opts())
	checkShape(t, rs)
	for _, r := range rs {
		if r.Status != doctor.Pass {
			t.Errorf("%s: %s, want pass:\n%s", r.Check, r.Status, dump(rs))
		}
	}
	tlsDetail := rs[4].Detail
	for _, w := range []string{"DNS:broker.test", "IP:127.0.0.1", "Test Fleet CA", "TLS 1."} {
		if !strings.Contains(tlsDetail, w) {
			t.Errorf("tls detail lacks %q: %s", w, tlsDetail)
		}
	}
	if !strings.Contains(rs[6].Detail, "edge/dev1/telemetry/doctor") {
		t.Errorf("publish detail: %s", rs[6].Detail)
	}
	t.Log("\n" + dump(rs))
}

func TestFaults(t *testing.T) {
	fx := newFixture(t)
	good := fx.dev

	loose := fx.issue("loose", pki.Template{CN: "loose", Client: true})
	if err := os.Chmod(loose.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	other := fx.issue("other", pki.Template{CN: "other", Client: true})
	weak := fx.issue("weak", pki.Template{CN: "weak", Client: true, RSABits: 1024})
	expired := fx.issue("expired", pki.Template{CN: "expired", Client: true,
		NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2021, 3, 4, 0, 0, 0, 0, time.UTC)})

	// A device whose tls.ca is its own certificate: Go's verifier accepts a
	// leaf found among the roots, so only the CA check catches it.
	selfCA := fx.config("dev1", good, 0, "")
	selfCA.TLS.CA = good.Cert

	noAddr := fx.config("dev1", good, 0, "")
	noAddr.Broker.Address = ""

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	wrongName := fx.issue("wrong-broker", pki.Template{CN: "mqtt.example", DNSNames: []string{"mqtt.example", "other.example"}, Server: true})
	wrongNameB := fx.start(brokertest.Options{CertFile: wrongName.Cert, KeyFile: wrongName.Key})

	cnOnly := fx.issue("legacy-broker", pki.Template{CN: brokertest.BrokerHost, Server: true})
	cnOnlyB := fx.start(brokertest.Options{CertFile: cnOnly.Cert, KeyFile: cnOnly.Key})

	otherCA, err := pki.NewCA("Other CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := otherCA.Issue(pki.Template{CN: brokertest.BrokerHost, DNSNames: []string{brokertest.BrokerHost}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	obCert, obKey, err := ob.WriteFiles(fx.dir, "other-ca-broker")
	if err != nil {
		t.Fatal(err)
	}
	otherCAB := fx.start(brokertest.Options{CertFile: obCert, KeyFile: obKey})

	// Our certificate from a CA the broker does not trust: we trust a bundle
	// of both CAs, so our own checks pass and the broker answers alert 48.
	foreign, bundle, err := fx.fleet.Foreign("dev1", otherCA)
	if err != nil {
		t.Fatal(err)
	}
	untrusted := fx.config("dev1", foreign, 0, "")
	untrusted.TLS.CA = bundle

	aclB := fx.start(brokertest.Options{ACL: "pattern write other/%u/#\npattern read edge/%u/cmd\n"})
	noReadB := fx.start(brokertest.Options{ACL: "pattern write edge/%u/#\n"})
	nagleB := fx.start(brokertest.Options{KeepNagle: true})
	// A broker that also listens in plain MQTT and lets anyone in, as the
	// tutorials' first set-up does.
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plainPort := pl.Addr().(*net.TCPAddr).Port
	pl.Close()
	anonB := fx.start(brokertest.Options{Extra: fmt.Sprintf("allow_anonymous true\nlistener %d 127.0.0.1\n", plainPort)})

	// Our certificate revoked on the broker; and a broker whose CRL has
	// expired (Mosquitto then refuses every client).
	revoked := fx.issue("revoked", pki.Template{CN: "revoked", Client: true})
	revokedCert, err := pki.ParseCertFile(revoked.Cert)
	if err != nil {
		t.Fatal(err)
	}
	crlNow, err := fx.fleet.CA.RevocationList([]*x509.Certificate{revokedCert}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	crlFile := filepath.Join(fx.dir, "revoked.crl")
	if err := os.WriteFile(crlFile, crlNow, 0o644); err != nil {
		t.Fatal(err)
	}
	revokedB := fx.start(brokertest.Options{Extra: "crlfile " + crlFile + "\n"})
	crlOld, err := fx.fleet.CA.RevocationList(nil, time.Now().Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	oldCRL := filepath.Join(fx.dir, "expired.crl")
	if err := os.WriteFile(oldCRL, crlOld, 0o644); err != nil {
		t.Fatal(err)
	}
	expiredCRLB := fx.start(brokertest.Options{Extra: "crlfile " + oldCRL + "\n"})

	// The buffer directory cannot be made: its parent is a file.
	blocker := filepath.Join(fx.dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	badBuffer := fx.config("dev1", good, 0, "")
	badBuffer.Buffer.Dir = filepath.Join(blocker, "buffer")

	cases := []struct {
		name  string
		cfg   *config.Config
		o     func(*doctor.Options)
		check string // the first failing check
		want  []string
	}{
		{"key readable by others", fx.config("loose", loose, 0, ""), nil, doctor.CheckCredentials, []string{"chmod 600", loose.Key}},
		{"key of another cert", fx.config("dev1", brokertest.Creds{Cert: good.Cert, Key: other.Key}, 0, ""), nil, doctor.CheckCredentials, []string{"does not match", "point tls.key"}},
		{"RSA 1024", fx.config("weak", weak, 0, ""), nil, doctor.CheckCredentials, []string{"1024-bit", "2048 bits or more"}},
		{"expired client cert", fx.config("expired", expired, 0, ""), nil, doctor.CheckCredentials, []string{"2021-03-04", "enroll again"}},
		{"clock at 1970", fx.config("dev1", good, 0, ""), func(o *doctor.Options) { o.Now = func() time.Time { return time.Unix(42, 0) } },
			doctor.CheckCredentials, []string{"this board's clock is not set (no RTC, NTP not synced)", "NTP"}},
		{"id differs from CN", fx.config("dev2", good, 0, ""), nil, doctor.CheckCredentials, []string{`"dev2"`, `set id = "dev1"`}},
		{"tls.ca is the device cert", selfCA, nil, doctor.CheckCredentials, []string{"not a CA certificate", "fleet CA certificate"}},
		{"name does not resolve", noAddr, func(o *doctor.Options) { o.LookupHost = noResolver }, doctor.CheckResolve, []string{"does not resolve", "add it to /etc/hosts or set broker.address / broker.discover"}},
		{"nothing listening", fx.config("dev1", good, closedPort, ""), nil, doctor.CheckTCP, []string{"connection refused", "start Mosquitto"}},
		{"broker cert for another name", fx.config("dev1", good, wrongNameB.Port, ""), nil, doctor.CheckTLS, []string{"DNS:mqtt.example", "set broker.host"}},
		{"CN-only broker cert", fx.config("dev1", good, cnOnlyB.Port, ""), nil, doctor.CheckTLS, []string{"no subjectAltName", "subjectAltName=DNS:broker.test", "legacy_cn"}},
		{"broker cert from another CA", fx.config("dev1", good, otherCAB.Port, ""), nil, doctor.CheckTLS, []string{"Other CA", "set tls.ca"}},
		{"our cert from a CA the broker does not trust", untrusted, nil, doctor.CheckTLS, []string{"unknown certificate authority", "cafile must contain the CA"}},
		{"ACL denies our prefix", fx.config("dev1", good, aclB.Port, ""), nil, doctor.CheckPublish, []string{"0x87", "`pattern write edge/%u/#`"}},
		{"ACL denies reading our commands", fx.config("dev1", good, noReadB.Port, ""), func(o *doctor.Options) { o.Timeout = time.Second }, doctor.CheckSubscribe, []string{"did not reach a subscriber", "`pattern read edge/%u/cmd`"}},
		{"our cert revoked on the broker", fx.config("revoked", revoked, revokedB.Port, ""), nil, doctor.CheckTLS, []string{"revoked"}},
		{"the broker's CRL expired", fx.config("dev1", good, expiredCRLB.Port, ""), nil, doctor.CheckTLS, []string{"CRL"}},
		{"buffer directory cannot be made", badBuffer, nil, doctor.CheckService, []string{"buffer.dir", "StateDirectory"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			if tc.o != nil {
				tc.o(&o)
			}
			rs := doctor.Run(fx.ctx, tc.cfg, o)
			checkShape(t, rs)
			f := firstFail(rs)
			if f.Check != tc.check {
				t.Fatalf("first failing check %q, want %q:\n%s", f.Check, tc.check, dump(rs))
			}
			text := f.Detail + " | " + f.Fix
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("%s lacks %q:\n%s", f.Check, w, dump(rs))
				}
			}
			if strings.Contains(text, "PRIVATE KEY") {
				t.Errorf("leaks key material: %s", text)
			}
			t.Logf("%s: %s\n  fix: %s", f.Check, f.Detail, f.Fix)
		})
	}

	warns := []struct {
		name  string
		cfg   *config.Config
		o     func(*doctor.Options)
		check string
		want  []string
	}{
		{"hosts file pins a stale address", fx.config("dev1", good, 0, ""), func(o *doctor.Options) {
			hosts := filepath.Join(t.TempDir(), "hosts")
			if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n# BEGIN agent\n192.0.2.77\tbroker.test\n# END agent\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			o.HostsFile = hosts
		}, doctor.CheckResolve, []string{"192.0.2.77", "stale", "correct or remove"}},
		{"client cert expires in 10 days", fx.config("soon", fx.issue("soon", pki.Template{CN: "soon", Client: true,
			NotAfter: time.Now().Add(10 * 24 * time.Hour)}), 0, ""), nil, doctor.CheckCredentials, []string{"expires on", "renewal is overdue"}},
		{"CN-only broker cert with legacy_cn", fx.config("dev1", good, cnOnlyB.Port, "legacy_cn = true"), nil, doctor.CheckTLS, []string{"CN-only", "legacy_cn", "subjectAltName=DNS:broker.test"}},
		{"broker stalls small packets (Nagle)", fx.config("dev1", good, nagleB.Port, ""), nil, doctor.CheckSubscribe, []string{"round trip", "set_tcp_nodelay true"}},
		{"anonymous plain listener", fx.config("dev1", good, anonB.Port, ""), func(o *doctor.Options) { o.PlainPort = plainPort },
			doctor.CheckHygiene, []string{"accepts anonymous clients", "bind it to 127.0.0.1"}},
	}
	for _, tc := range warns {
		t.Run("warn "+tc.name, func(t *testing.T) {
			o := opts()
			if tc.o != nil {
				tc.o(&o)
			}
			rs := doctor.Run(fx.ctx, tc.cfg, o)
			checkShape(t, rs)
			if doctor.Failed(rs) {
				t.Fatalf("a check failed, want only a warning:\n%s", dump(rs))
			}
			for _, r := range rs {
				if r.Check == tc.check {
					if r.Status != doctor.Warn {
						t.Fatalf("%s is %s, want warn:\n%s", r.Check, r.Status, dump(rs))
					}
					for _, w := range tc.want {
						if !strings.Contains(r.Detail+" | "+r.Fix, w) {
							t.Errorf("%s lacks %q:\n%s", r.Check, w, dump(rs))
						}
					}
				} else if r.Status != doctor.Pass {
					t.Errorf("%s is %s, want pass:\n%s", r.Check, r.Status, dump(rs))
				}
			}
		})
	}
}

// TestCLI runs `agent doctor` in-process the way a person types it: exit
// codes 0, 1 and 2, the table and the JSON array.
func TestCLI(t *testing.T) {
	fx := newFixture(t)
	write := func(cfg string) string {
		p := filepath.Join(t.TempDir(), "agent.toml")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	healthy := write(fx.fleet.AgentConfig("dev1", fx.dev, fx.broker.Port, "", ""))
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	down := write(fx.fleet.AgentConfig("dev1", fx.dev, port, "", ""))
	typo := write(fx.fleet.AgentConfig("dev1", fx.dev, fx.broker.Port, "", "[mqtt]\nprefixx = \"x\"\n"))

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Run(fx.ctx, append([]string{"doctor"}, args...), &out, &errb, "test")
		return code, out.String(), errb.String()
	}
	t.Run("healthy table", func(t *testing.T) {
		code, out, errs := run("--config", healthy)
		if code != cli.ExitOK {
			t.Fatalf("exit %d, want 0:\n%s%s", code, out, errs)
		}
		for _, w := range []string{"PASS  config ", "PASS  publish ", "edge/dev1/telemetry/doctor"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		t.Log("\n" + out)
	})
	t.Run("broker down", func(t *testing.T) {
		code, out, _ := run("--config", down)
		if code != cli.ExitFailure || !strings.Contains(out, "FAIL  tcp ") || !strings.Contains(out, "fix: start Mosquitto") ||
			!strings.Contains(out, "SKIP  tls ") {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
	})
	t.Run("config unreadable, json", func(t *testing.T) {
		code, out, errs := run("--config", typo, "--json")
		if code != cli.ExitRefused {
			t.Fatalf("exit %d, want 2:\n%s%s", code, out, errs)
		}
		var rs []doctor.Result
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, out)
		}
		if len(rs) != len(doctor.Checks) || rs[0].Check != "config" || rs[0].Status != "fail" ||
			!strings.Contains(rs[0].Detail, `unknown key "mqtt.prefixx"`) || rs[1].Status != "skip" {
			t.Errorf("results:\n%s", out)
		}
		if !strings.Contains(out, `"check": "config"`) || !strings.Contains(out, `"fix": `) {
			t.Errorf("JSON keys:\n%s", out)
		}
	})
	t.Run("missing config file", func(t *testing.T) {
		code, out, _ := run("--config", filepath.Join(t.TempDir(), "absent.toml"))
		if code != cli.ExitRefused || !strings.Contains(out, "FAIL  config") || !strings.Contains(out, "absent.toml") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
}

// fakeBrowser answers a browse with fixed services (no multicast leaves the
// test).
type fakeBrowser []discovery.Service

func (f fakeBrowser) Browse(context.Context, string, time.Duration) ([]discovery.Service, error) {
	return f, nil
}

// TestDiscover: with broker.discover the doctor finds the broker as the
// daemon does and verifies it over TLS; with nothing advertised it says so.
func TestDiscover(t *testing.T) {
	fx := newFixture(t)
	cfg := fx.config("dev1", fx.dev, 0, "")
	cfg.Broker.Address, cfg.Broker.Discover, cfg.Broker.HostsFile = "", true, ""
	found := opts()
	found.LookupHost = noResolver
	found.Browser = fakeBrowser{{Instance: "MQTT on hub", Host: "hub.local.", Port: fx.broker.Port,
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, TXT: []string{"host=" + brokertest.BrokerHost}}}
	rs := doctor.Run(fx.ctx, cfg, found)
	checkShape(t, rs)
	if doctor.Failed(rs) || !strings.Contains(rs[2].Detail, `mDNS: "MQTT on hub"`) {
		t.Errorf("discovered broker:\n%s", dump(rs))
	}
	none := opts()
	none.LookupHost = noResolver
	none.Browser = fakeBrowser{}
	rs = doctor.Run(fx.ctx, cfg, none)
	if f := firstFail(rs); f.Check != doctor.CheckResolve || !strings.Contains(f.Fix, "advertise the broker") {
		t.Errorf("nothing advertised:\n%s", dump(rs))
	}
}

// TestDaemonState: the service check finds `agent run` in a /proc and names
// its systemd unit from its cgroup.
func TestDaemonState(t *testing.T) {
	fx := newFixture(t)
	proc := t.TempDir()
	write := func(pid, name, data string) {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("77", "cmdline", "/usr/bin/vim\x00notes\x00")
	write("812", "cmdline", "/usr/bin/agent\x00run\x00--config\x00/etc/agent/agent.toml\x00")
	write("812", "cgroup", "0::/system.slice/agent.service\n")
	o := opts()
	o.ProcRoot = proc
	rs := doctor.Run(fx.ctx, fx.config("dev1", fx.dev, 0, ""), o)
	last := rs[len(rs)-1]
	if last.Check != doctor.CheckService || !strings.Contains(last.Detail, "runs as agent.service (pid 812)") {
		t.Errorf("service: %+v", last)
	}
	if err := os.RemoveAll(filepath.Join(proc, "812")); err != nil {
		t.Fatal(err)
	}
	rs = doctor.Run(fx.ctx, fx.config("dev1", fx.dev, 0, ""), o)
	if last := rs[len(rs)-1]; !strings.Contains(last.Detail, "no agent daemon") {
		t.Errorf("service without a daemon: %+v", last)
	}
}

// TestServiceUser: credential files the service user cannot read are named
// (here the service user is "nobody"; the key stays root's 0600).
func TestServiceUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the files must belong to someone else than the service user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on this machine")
	}
	fx := newFixture(t)
	o := opts()
	o.ServiceUser = "nobody"
	cfg := fx.config("dev1", fx.dev, 0, "")
	// The test's temp dirs are 0700 root: let nobody through to the files.
	for d := filepath.Dir(fx.dev.Key); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	rs := doctor.Run(fx.ctx, cfg, o)
	f := firstFail(rs)
	if f.Check != doctor.CheckCredentials || !strings.Contains(f.Detail, "cannot be read by the service user nobody") || !strings.Contains(f.Fix, "chown nobody "+fx.dev.Key) {
		t.Fatalf("key unreadable by the service user:\n%s", dump(rs))
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	if err := os.Chown(fx.dev.Key, uid, -1); err != nil {
		t.Fatal(err)
	}
	if rs := doctor.Run(fx.ctx, cfg, o); doctor.Failed(rs) {
		t.Errorf("key owned by the service user:\n%s", dump(rs))
	}
}
