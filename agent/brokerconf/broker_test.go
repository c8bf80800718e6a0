package brokerconf

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

// lab is a CA directory, the generated broker files and the real
// Mosquitto running them unchanged.
type lab struct {
	t   *testing.T
	dir string
	ca  *pki.Dir
	o   Options
	res Result
	b   *brokertest.Broker
}

func newLab(t *testing.T, localPlain bool) *lab {
	t.Helper()
	if err := brokertest.Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	// Started as root, Mosquitto drops to the mosquitto user, which must
	// reach the files through the test's temporary directories (0700).
	if os.Geteuid() == 0 {
		for d := dir; d != os.TempDir() && d != filepath.Dir(d); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	ca, err := pki.InitDir(filepath.Join(dir, "ca"), pki.InitOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: dir, ca: ca}
	l.o = Options{CADir: ca.Path, Host: "broker.test", SANs: []string{"127.0.0.1"},
		Out: filepath.Join(dir, "conf"), CertDir: filepath.Join(dir, "certs"),
		Port: freePort(t), Bind: "127.0.0.1", LocalPlain: localPlain}
	if localPlain {
		l.o.LocalPort = freePort(t)
	}
	if l.res, err = Write(l.o); err != nil {
		t.Fatal(err)
	}
	if !l.res.Issued {
		t.Error("first Write did not issue a broker certificate")
	}
	return l
}

// start runs Mosquitto with conf, agent.conf when "".
func (l *lab) start(conf string) {
	l.t.Helper()
	if conf == "" {
		conf = l.res.ConfFile
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := brokertest.StartConfig(ctx, conf, net.JoinHostPort("127.0.0.1", strconv.Itoa(l.o.Port)), nil)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(b.Stop)
	l.b = b
}

// client issues a device certificate with CN id from the CA directory.
func (l *lab) client(id string) *brokertest.Client {
	l.t.Helper()
	prefix := filepath.Join(l.dir, id)
	if _, err := os.Stat(prefix + ".crt"); err != nil {
		p, err := l.ca.Issue(pki.IssueOptions{CN: id}, time.Now())
		if err != nil {
			l.t.Fatal(err)
		}
		if err := pki.WritePair(p, prefix); err != nil {
			l.t.Fatal(err)
		}
	}
	return &brokertest.Client{Broker: l.b, CA: l.res.CAFile, Cert: prefix + ".crt", Key: prefix + ".key"}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func denied(err error) bool { return err != nil && strings.Contains(err.Error(), "authorized") }

// listenPorts are the ports Mosquitto says it opened.
func listenPorts(log string) map[string]bool {
	ports := map[string]bool{}
	for _, m := range regexp.MustCompile(`listen socket on port (\d+)`).FindAllStringSubmatch(log, -1) {
		ports[m[1]] = true
	}
	return ports
}

// TestMosquitto runs Debian's Mosquitto with the generated agent.conf as
// it is and checks the wire contract's access rules with independent
// clients (mosquitto_pub/sub, openssl s_client).
func TestMosquitto(t *testing.T) {
	l := newLab(t, false)
	l.start("")
	dev1, master := l.client("dev1"), l.client("master")

	t.Run("ownership", func(t *testing.T) {
		st, err := os.Stat(l.res.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() != 0 {
			if st.Mode().Perm() != 0o600 || len(l.res.Notes) == 0 {
				t.Errorf("not root: key mode %04o, notes %q; want 0600 and a note", st.Mode().Perm(), l.res.Notes)
			}
			return
		}
		if _, err := user.Lookup(DefaultBrokerUser); err == nil {
			if l.res.KeyOwner != "root:"+DefaultBrokerUser || st.Mode().Perm() != 0o640 {
				t.Errorf("key owner %q mode %04o, want root:%s 0640", l.res.KeyOwner, st.Mode().Perm(), DefaultBrokerUser)
			}
		}
		for _, n := range l.res.Notes {
			if strings.Contains(n, "cannot be entered") {
				t.Errorf("note: %s", n)
			}
		}
	})

	t.Run("device and master", func(t *testing.T) {
		ctx := ctx10(t)
		sub, err := master.Subscribe(ctx, "edge/#")
		if err != nil {
			t.Fatalf("master subscribes edge/#: %v\n%s", err, l.b.Log())
		}
		defer sub.Stop()
		if err := dev1.Pub(ctx, "edge/dev1/telemetry/x", []byte(`{"seq":1}`), 1, false); err != nil {
			t.Fatalf("dev1 into its own topics: %v\n%s", err, l.b.Log())
		}
		if got, err := sub.Next("edge/dev1/telemetry/x", 5*time.Second); err != nil || got != `{"seq":1}` {
			t.Errorf("master reading dev1's telemetry: %q, %v", got, err)
		}
		if err := dev1.Pub(ctx, "homeassistant/sensor/dev1/t/config", []byte(`{}`), 1, true); err != nil {
			t.Errorf("dev1 writing its Home Assistant discovery config: %v", err)
		}
	})

	t.Run("device confined", func(t *testing.T) {
		ctx := ctx10(t)
		for _, topic := range []string{"edge/dev2/telemetry/x", "edge/dev2/cmd", "edge/master/x", "other/dev1/x", "homeassistant/sensor/dev2/t/config"} {
			if err := dev1.Pub(ctx, topic, []byte(`{}`), 1, false); !denied(err) {
				t.Errorf("dev1 publishing to %s: %v; want not authorized (0x87)", topic, err)
			}
		}
		// dev1 asks for dev2's commands and its own; the master sends
		// dev2's first. The broker handles them in order, so had dev1
		// been allowed dev2's, it would get it before its own.
		sub, err := dev1.Subscribe(ctx, "edge/dev2/cmd", "edge/dev1/cmd")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		for _, topic := range []string{"edge/dev2/cmd", "edge/dev1/cmd"} {
			if err := master.Pub(ctx, topic, []byte(`{"id":"c1","action":"ping"}`), 1, false); err != nil {
				t.Fatalf("master commanding %s: %v", topic, err)
			}
		}
		m, err := sub.NextMsg("", 5*time.Second)
		if err != nil || m.Topic != "edge/dev1/cmd" {
			t.Errorf("dev1's first message: %+v, %v; want its own command only", m, err)
		}
	})

	t.Run("no certificate", func(t *testing.T) {
		ctx := ctx10(t)
		out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(l.o.Port), "--cafile", l.res.CAFile,
			"-V", "mqttv5", "-q", "1", "-t", "edge/x/status", "-m", "{}").CombinedOutput()
		if err == nil {
			t.Errorf("a client without certificate published: %s", out)
		}
		out, err = exec.CommandContext(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", strconv.Itoa(l.o.Port),
			"-V", "mqttv5", "-q", "1", "-t", "edge/x/status", "-m", "{}").CombinedOutput()
		if err == nil {
			t.Errorf("a plain client published on the TLS port: %s", out)
		}
	})

	t.Run("no plain listener", func(t *testing.T) {
		ports := listenPorts(l.b.Log())
		if len(ports) != 1 || !ports[strconv.Itoa(l.o.Port)] {
			t.Errorf("Mosquitto opened ports %v, want only %d:\n%s", ports, l.o.Port, l.b.Log())
		}
	})

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		if _, err := exec.LookPath("openssl"); err != nil {
			t.Skip("openssl not installed")
		}
		sClient := func(version string) (string, error) {
			ctx := ctx10(t)
			cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", l.b.Addr, version, "-cipher", "DEFAULT@SECLEVEL=0",
				"-CAfile", l.res.CAFile, "-cert", dev1.Cert, "-key", dev1.Key, "-verify_return_error")
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := sClient("-tls1_2"); err != nil {
			t.Fatalf("TLS 1.2 (control) failed: %v\n%s", err, out)
		}
		out, err := sClient("-tls1_1")
		if err == nil || !strings.Contains(out, "protocol version") {
			t.Errorf("TLS 1.1: %v; want the broker's protocol version alert:\n%s", err, out)
		}
	})

	t.Run("report", func(t *testing.T) {
		rep := l.res.Report()
		for _, want := range []string{"issued broker certificate", "broker.test, 127.0.0.1", "wrote " + l.res.ConfFile,
			"mosquitto -c " + l.res.ConfFile, "[crl]\nfile = " + strconv.Quote(l.res.CRLFile), "ca_dir = " + strconv.Quote(l.o.CADir)} {
			if !strings.Contains(rep, want) {
				t.Errorf("report lacks %q:\n%s", want, rep)
			}
		}
	})

	t.Run("second Write reuses", func(t *testing.T) {
		res, err := Write(l.o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Issued || res.CertSerial != l.res.CertSerial || len(res.Written) != 0 {
			t.Errorf("second Write: issued %v serial %s (was %s), wrote %q; want nothing new", res.Issued, res.CertSerial, l.res.CertSerial, res.Written)
		}
	})

	// Last: it restarts the broker.
	t.Run("revoked", func(t *testing.T) {
		dev2 := l.client("dev2")
		if err := dev2.Pub(ctx10(t), "edge/dev2/status", []byte(`{}`), 1, false); err != nil {
			t.Fatalf("dev2 before revocation: %v", err)
		}
		if _, err := l.ca.Revoke("dev2", nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		res, err := Write(l.o) // copies the new CRL
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Written) != 1 || res.Written[0] != l.res.CRLFile {
			t.Errorf("after revoking, Write wrote %q, want only %s", res.Written, l.res.CRLFile)
		}
		l.b.Stop()
		l.start("")
		dev1.Broker, dev2.Broker = l.b, l.b
		if err := dev2.Pub(ctx10(t), "edge/dev2/status", []byte(`{}`), 1, false); err == nil {
			t.Errorf("revoked dev2 still publishes:\n%s", l.b.Log())
		}
		if err := dev1.Pub(ctx10(t), "edge/dev1/status", []byte(`{}`), 1, false); err != nil {
			t.Errorf("dev1 after dev2's revocation: %v", err)
		}
	})
}

// TestMosquittoLocalPlain: with LocalPlain, an anonymous client on the
// loopback listener reads the fleet's topics and writes nothing, and a
// client claiming a user name there (no password file) gets nothing.
func TestMosquittoLocalPlain(t *testing.T) {
	l := newLab(t, true)
	l.start("")
	ctx := ctx10(t)
	master := l.client("master")
	if err := master.Pub(ctx, "edge/dev1/status", []byte(`{"state":"online"}`), 1, true); err != nil {
		t.Fatal(err)
	}
	plain := func(tool string, args ...string) (string, error) {
		args = append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(l.o.LocalPort), "-V", "mqttv5"}, args...)
		out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
		return string(out), err
	}
	// The retained status answers the subscription at once: no waiting.
	if out, err := plain("mosquitto_sub", "-t", "edge/#", "-C", "1", "-W", "5"); err != nil || !strings.Contains(out, `"online"`) {
		t.Errorf("anonymous local reader: %q, %v", out, err)
	}
	// mosquitto_pub exits 0 on a refused QoS 1 publish and prints the
	// PUBACK's reason.
	refused := func(out string, err error) bool { return err == nil && strings.Contains(out, "failed: Not authorized") }
	for _, topic := range []string{"edge/dev1/cmd", "edge/dev1/status", "homeassistant/x/y/config"} {
		if out, err := plain("mosquitto_pub", "-q", "1", "-t", topic, "-m", "{}"); !refused(out, err) {
			t.Errorf("anonymous local publish to %s: %v %s; want not authorized", topic, err, out)
		}
	}
	for _, user := range []string{"master", "dev1"} {
		if out, err := plain("mosquitto_pub", "-u", user, "-q", "1", "-t", "edge/dev1/cmd", "-m", "{}"); !refused(out, err) {
			t.Errorf("local client claiming %s published: %v %s; want not authorized", user, err, out)
		}
		// Mosquitto 2.0 grants the subscription and filters at delivery:
		// the retained status, delivered at once to a reader, must not come.
		if out, err := plain("mosquitto_sub", "-u", user, "-t", "edge/#", "-C", "1", "-W", "1"); err == nil || strings.Contains(out, "online") {
			t.Errorf("local client claiming %s read edge/#: %v %s", user, err, out)
		}
	}
	ports := listenPorts(l.b.Log())
	if len(ports) != 2 || !ports[strconv.Itoa(l.o.Port)] || !ports[strconv.Itoa(l.o.LocalPort)] {
		t.Errorf("Mosquitto opened ports %v, want %d and %d", ports, l.o.Port, l.o.LocalPort)
	}
	// The device side is unchanged by the second listener.
	if err := l.client("dev1").Pub(ctx, "edge/dev2/x", []byte(`{}`), 1, false); !denied(err) {
		t.Errorf("dev1 into dev2's topics: %v", err)
	}

	// Without LocalPlain again, the stale local ACL goes.
	o := l.o
	o.LocalPlain = false
	res, err := Write(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.Out, LocalACLFile)); !errors.Is(err, os.ErrNotExist) || len(res.Removed) != 1 {
		t.Errorf("stale %s: %v, removed %q", LocalACLFile, err, res.Removed)
	}
}

// TestMosquittoDebianInclude: agent.conf as a file of include_dir under a
// copy of Debian's mosquitto.conf (pid_file, persistence, log_dest set
// there), so nothing in it clashes with what Debian sets.
func TestMosquittoDebianInclude(t *testing.T) {
	l := newLab(t, false)
	debian, err := os.ReadFile("/etc/mosquitto/mosquitto.conf")
	if err != nil {
		t.Skipf("no Debian mosquitto.conf: %v", err)
	}
	run := filepath.Join(l.dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup(DefaultBrokerUser); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(run, uid, gid); err != nil { // Debian's /var/lib/mosquitto is the broker's
				t.Fatal(err)
			}
		}
	}
	conf := string(debian)
	for _, r := range [][2]string{
		{"/run/mosquitto/mosquitto.pid", filepath.Join(run, "mosquitto.pid")},
		{"/var/lib/mosquitto/", run + "/"},
		{"log_dest file /var/log/mosquitto/mosquitto.log", "log_dest stderr"},
		{"include_dir /etc/mosquitto/conf.d", "include_dir " + l.o.Out},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Skipf("Debian's mosquitto.conf has no %q: adapt the test", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	main := filepath.Join(run, "mosquitto.conf")
	if err := os.WriteFile(main, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	l.start(main)
	if err := l.client("dev1").Pub(ctx10(t), "edge/dev1/status", []byte(`{}`), 1, true); err != nil {
		t.Fatalf("dev1 through the Debian layout: %v\n%s", err, l.b.Log())
	}
	if err := l.client("dev1").Pub(ctx10(t), "edge/dev2/status", []byte(`{}`), 1, true); !denied(err) {
		t.Errorf("dev1 into dev2's topics: %v", err)
	}
}
