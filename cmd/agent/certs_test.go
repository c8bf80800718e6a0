package main

// The certificate life cycle as a person runs it, with the built binary:
// `agent ca` makes the PKI, a master serves enrollment and keeps the broker's
// CRL, `agent enroll` gets a device its certificate, the device connects to
// the real Mosquitto, and after `agent ca revoke` the broker refuses it.
// openssl is the independent judge of every certificate and CRL.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

// runCLI runs the agent to completion (bounded) and returns its exit code,
// stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("agent %v did not exit within 30s; stderr:\n%s", args, stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// mustCLI runs the agent and fails the test unless it exits 0.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("agent %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// openssl runs openssl and returns its combined output and error.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (apt-get install openssl): it judges the certificates")
	}
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// assertNoFiles fails if dir holds anything.
func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("%s: %s left behind by a refused enrollment", dir, e.Name())
	}
}

func TestCACommands(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	mustCLI(t, "ca", "init", "--dir", ca, "--cn", "Test Fleet CA")
	if st, err := os.Stat(filepath.Join(ca, "ca.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if code, _, errOut := runCLI(t, "ca", "init", "--dir", ca); code == 0 || !strings.Contains(errOut, "--force") {
		t.Errorf("second init: exit %d, %q; want a refusal naming --force", code, errOut)
	}
	caCrt := filepath.Join(ca, "ca.crt")

	mustCLI(t, "ca", "issue", "--dir", ca, "--cn", "broker.test", "--server", "--san", "127.0.0.1,mqtt.test", "--out", filepath.Join(dir, "broker"))
	mustCLI(t, "ca", "issue", "--dir", ca, "--cn", "dev1", "--out", filepath.Join(dir, "dev1"))
	if st, _ := os.Stat(filepath.Join(dir, "dev1.key")); st == nil || st.Mode().Perm() != 0o600 {
		t.Errorf("dev1.key mode: want 0600")
	}
	for _, c := range []struct{ name, purpose, ext string }{
		{"broker", "sslserver", "DNS:broker.test"},
		{"dev1", "sslclient", "TLS Web Client Authentication"},
	} {
		crt := filepath.Join(dir, c.name+".crt")
		if out, err := openssl(t, "verify", "-purpose", c.purpose, "-CAfile", caCrt, crt); err != nil {
			t.Errorf("openssl verify %s: %v\n%s", c.name, err, out)
		}
		out, _ := openssl(t, "x509", "-in", crt, "-noout", "-ext", "extendedKeyUsage,subjectAltName")
		if !strings.Contains(out, c.ext) {
			t.Errorf("%s extensions %q lack %q", c.name, out, c.ext)
		}
	}
	if out, _ := openssl(t, "x509", "-in", filepath.Join(dir, "broker.crt"), "-noout", "-ext", "subjectAltName"); !strings.Contains(out, "IP Address:127.0.0.1") || !strings.Contains(out, "DNS:mqtt.test") {
		t.Errorf("broker SANs %q: want broker.test, mqtt.test and 127.0.0.1", out)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"subject of the CA", []string{"--cn", "Test Fleet CA"}, "CA"},
		{"weak RSA", []string{"--cn", "dev2", "--key", "rsa1024"}, "rsa1024"},
		{"bad SAN", []string{"--cn", "dev2", "--san", "not a name"}, "not a name"},
		{"existing out", []string{"--cn", "dev1"}, "exists"},
		{"no out", []string{"--cn", "dev2", "--out", ""}, "--out"},
	} {
		t.Run("refuse "+c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x")
			if c.name == "existing out" {
				out = filepath.Join(dir, "dev1")
			}
			args := append([]string{"ca", "issue", "--dir", ca, "--out", out}, c.args...)
			code, _, errOut := runCLI(t, args...)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q; want a refusal naming %q", code, errOut, c.want)
			}
		})
	}

	serial := strings.TrimSpace(strings.TrimPrefix(mustOpenssl(t, "x509", "-in", filepath.Join(dir, "dev1.crt"), "-noout", "-serial"), "serial="))
	out := mustCLI(t, "ca", "revoke", "--dir", ca, "--serial", serial)
	if !strings.Contains(out, "dev1") {
		t.Errorf("revoke printed %q", out)
	}
	crl := filepath.Join(ca, "ca.crl")
	if out, err := openssl(t, "crl", "-in", crl, "-CAfile", caCrt, "-noout"); err != nil {
		t.Errorf("openssl crl: %v %s", err, out)
	}
	if out, err := openssl(t, "verify", "-crl_check", "-CRLfile", crl, "-CAfile", caCrt, filepath.Join(dir, "dev1.crt")); err == nil || !strings.Contains(out, "revoked") {
		t.Errorf("openssl verify -crl_check of a revoked cert: %v %s", err, out)
	}
	list := mustCLI(t, "ca", "list", "--dir", ca)
	if !strings.Contains(list, "revoked") || !strings.Contains(list, "broker.test") {
		t.Errorf("ca list:\n%s", list)
	}
	if code, _, errOut := runCLI(t, "ca", "revoke", "--dir", ca, "--id", "nobody"); code == 0 || !strings.Contains(errOut, "nobody") {
		t.Errorf("revoke unknown id: exit %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t, "ca", "token", "--dir", ca, "--id", "bad/id"); code == 0 {
		t.Error("token for an invalid id was made")
	}
}

func mustOpenssl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := openssl(t, args...)
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
	return out
}

// TestEnrollAndRevoke is the whole life of a device's certificate against
// the real broker.
func TestEnrollAndRevoke(t *testing.T) {
	if err := brokertest.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	mustCLI(t, "ca", "init", "--dir", caDir)
	caCrt := filepath.Join(caDir, "ca.crt")
	mustCLI(t, "ca", "issue", "--dir", caDir, "--cn", brokertest.BrokerHost, "--server", "--san", "127.0.0.1", "--out", filepath.Join(dir, "broker"))
	mustCLI(t, "ca", "issue", "--dir", caDir, "--cn", "master", "--out", filepath.Join(dir, "master"))
	d, err := pki.OpenDir(caDir)
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := brokertest.FleetWithCA(dir, d.CA, caCrt)
	if err != nil {
		t.Fatal(err)
	}

	// The broker reads the CRL the master keeps, and writes a pid file the
	// master signals.
	brokerCRL := filepath.Join(dir, "broker.crl")
	crlPEM, err := os.ReadFile(filepath.Join(caDir, "ca.crl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(brokerCRL, crlPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "mosquitto.pid")
	broker, err := fleet.Start(ctx, brokertest.Options{
		CertFile: filepath.Join(dir, "broker.crt"), KeyFile: filepath.Join(dir, "broker.key"),
		Extra: fmt.Sprintf("crlfile %s\npid_file %s\n", brokerCRL, pidFile),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Stop()

	estPort := freeTCPPort(t)
	server := "https://127.0.0.1:" + strconv.Itoa(estPort)
	masterConf := filepath.Join(dir, "master.toml")
	text := fleet.AgentConfig("master", brokertest.Creds{Cert: filepath.Join(dir, "master.crt"), Key: filepath.Join(dir, "master.key")}, broker.Port, "",
		fmt.Sprintf("[enroll]\nlisten = \"127.0.0.1:%d\"\nca_dir = %q\n[crl]\nfile = %q\npid_file = %q\ncheck = \"1s\"\n", estPort, caDir, brokerCRL, pidFile))
	if err := os.WriteFile(masterConf, []byte("role = \"master\"\n"+text), 0o644); err != nil {
		t.Fatal(err)
	}
	master := startAgent(t, "run", "--config", masterConf)
	master.logged(t, 10*time.Second, "serving enrollment", "msg=online")

	token := strings.TrimSpace(mustCLI(t, "ca", "token", "--dir", caDir, "--id", "dev1"))
	if !strings.HasPrefix(token, "dev1.") {
		t.Fatalf("token %q does not carry the id", token)
	}
	devDir := filepath.Join(dir, "dev1-tls")
	enrollArgs := func(tok, ca, out string, more ...string) []string {
		return append([]string{"enroll", "--ca", ca, "--server", server, "--token", tok, "--dir", out}, more...)
	}

	t.Run("rogue CA file", func(t *testing.T) {
		other := t.TempDir()
		mustCLI(t, "ca", "init", "--dir", other, "--cn", "Other CA")
		out := t.TempDir()
		code, _, errOut := runCLI(t, enrollArgs(token, filepath.Join(other, "ca.crt"), out)...)
		if code != 1 || !strings.Contains(errOut, "not signed by the CA file") {
			t.Errorf("exit %d, %q; want 1 and the server's certificate refused", code, errOut)
		}
		assertNoFiles(t, out)
	})
	t.Run("wrong token", func(t *testing.T) {
		out := t.TempDir()
		code, _, errOut := runCLI(t, enrollArgs("dev1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", caCrt, out)...)
		if code != 1 || !strings.Contains(errOut, "token") {
			t.Errorf("exit %d, %q; want 1 and the token refused", code, errOut)
		}
		assertNoFiles(t, out)
	})
	t.Run("expired token", func(t *testing.T) {
		short := strings.TrimSpace(mustCLI(t, "ca", "token", "--dir", caDir, "--id", "dev9", "--ttl", "1ms"))
		out := t.TempDir()
		code, _, errOut := runCLI(t, enrollArgs(short, caCrt, out)...)
		if code != 1 || !strings.Contains(errOut, "expired") {
			t.Errorf("exit %d, %q; want 1 and the token expired", code, errOut)
		}
		assertNoFiles(t, out)
	})
	t.Run("token for another id", func(t *testing.T) {
		code, _, errOut := runCLI(t, enrollArgs(token, caCrt, t.TempDir(), "--id", "dev2")...)
		if code != 2 || !strings.Contains(errOut, `made for "dev1"`) {
			t.Errorf("exit %d, %q; want 2 naming the token's id", code, errOut)
		}
	})

	// The good enrollment, judged by openssl.
	out := mustCLI(t, enrollArgs(token, caCrt, devDir)...)
	if !strings.Contains(out, "enrolled as dev1") {
		t.Errorf("enroll printed %q", out)
	}
	devCrt, devKey := filepath.Join(devDir, "device.crt"), filepath.Join(devDir, "device.key")
	if st, err := os.Stat(devKey); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("device.key: %v; want mode 0600", err)
	}
	if o, err := openssl(t, "verify", "-purpose", "sslclient", "-CAfile", caCrt, devCrt); err != nil {
		t.Errorf("openssl verify: %v %s", err, o)
	}
	if o := mustOpenssl(t, "x509", "-in", devCrt, "-noout", "-subject", "-ext", "extendedKeyUsage"); !strings.Contains(o, "CN = dev1") || strings.Contains(o, "Server") {
		t.Errorf("enrolled cert: %s", o)
	}
	if o := mustOpenssl(t, "x509", "-in", devCrt, "-noout", "-enddate"); !strings.Contains(o, time.Now().AddDate(0, 0, 90).UTC().Format("Jan _2")) {
		t.Errorf("enrolled cert lifetime: %s; want 90 days (enroll.cert_days)", o)
	}

	t.Run("token used twice", func(t *testing.T) {
		out := t.TempDir()
		code, _, errOut := runCLI(t, enrollArgs(token, caCrt, out)...)
		if code != 1 || !strings.Contains(errOut, "already used") {
			t.Errorf("exit %d, %q; want 1 and the token already used", code, errOut)
		}
		assertNoFiles(t, out)
	})
	t.Run("existing credentials kept", func(t *testing.T) {
		before, _ := os.ReadFile(devKey)
		tok := strings.TrimSpace(mustCLI(t, "ca", "token", "--dir", caDir, "--id", "dev1"))
		code, _, errOut := runCLI(t, enrollArgs(tok, caCrt, devDir)...)
		if code != 2 || !strings.Contains(errOut, "--overwrite") {
			t.Errorf("exit %d, %q; want 2 naming --overwrite", code, errOut)
		}
		if after, _ := os.ReadFile(devKey); !bytes.Equal(before, after) {
			t.Error("device.key changed")
		}
	})

	// The enrolled device works with the broker...
	mon := fleet.Client(broker, fleet.Monitor)
	sub, err := mon.Subscribe(ctx, "edge/dev1/status")
	if err != nil {
		t.Fatal(err)
	}
	devConf := filepath.Join(dir, "dev1.toml")
	devText := fleet.AgentConfig("", brokertest.Creds{Cert: devCrt, Key: devKey}, broker.Port, "", "")
	devText = strings.Replace(devText, fmt.Sprintf("ca = %q", caCrt), fmt.Sprintf("ca = %q", filepath.Join(devDir, "ca.crt")), 1)
	if err := os.WriteFile(devConf, []byte(devText), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := startAgent(t, "run", "--config", devConf)
	dev.waitFor(t, 10*time.Second, "msg=online")
	waitLine(t, sub.Lines, 10*time.Second, `"state":"online"`)
	devClient := &brokertest.Client{Broker: broker, CA: caCrt, Cert: devCrt, Key: devKey}
	if err := devClient.Pub(ctx, "edge/dev1/probe", []byte("x"), 1, false); err != nil {
		t.Fatalf("enrolled device cannot publish: %v", err)
	}

	// ...until it is revoked: the master installs the CRL and reloads the
	// broker, which then refuses the device's certificate.
	out = mustCLI(t, "ca", "revoke", "--dir", caDir, "--id", "dev1")
	if !strings.Contains(out, "dev1") {
		t.Errorf("revoke printed %q", out)
	}
	master.waitFor(t, 10*time.Second, "CRL installed and the broker reloaded")
	if o, err := openssl(t, "verify", "-crl_check", "-CRLfile", brokerCRL, "-CAfile", caCrt, devCrt); err == nil || !strings.Contains(o, "revoked") {
		t.Errorf("openssl verify -crl_check against the installed CRL: %v %s", err, o)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := devClient.Pub(ctx, "edge/dev1/probe", []byte("x"), 1, false)
		if err != nil {
			t.Logf("revoked device refused: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker still accepts the revoked certificate 10s after the revocation")
		}
		time.Sleep(100 * time.Millisecond) // polling the broker's verdict, bounded by the deadline
	}
	if list := mustCLI(t, "ca", "list", "--dir", caDir); !strings.Contains(list, "revoked") {
		t.Errorf("ca list after revoke:\n%s", list)
	}
}

// waitLine returns the first line from lines containing want.
func waitLine(t *testing.T, lines <-chan string, timeout time.Duration, want string) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("subscriber ended before %q", want)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline.C:
			t.Fatalf("no line with %q within %v", want, timeout)
		}
	}
}
