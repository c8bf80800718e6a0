package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
	"github.com/edgeagent/agent/pki/est"
	"github.com/edgeagent/agent/sensors"
	"github.com/edgeagent/agent/sensors/clocktest"
)

// TestRenewalReconnectsWithNewCert renews the client certificate on an
// injected clock through a real EST server, revokes the old certificate on
// the real broker and restarts it: the agent comes back online, so the
// broker accepted the new certificate, with no restart of the agent.
func TestRenewalReconnectsWithNewCert(t *testing.T) {
	if err := brokertest.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	ca, err := pki.InitDir(caDir, pki.InitOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(caDir, pki.CertFile)
	fleet, err := brokertest.FleetWithCA(dir, ca.CA, caFile)
	if err != nil {
		t.Fatal(err)
	}
	crlFile := filepath.Join(dir, "broker.crl")
	writeCRL := func() {
		t.Helper()
		data, err := ca.WriteCRL(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crlFile, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCRL()
	opts := brokertest.Options{Extra: "crlfile " + crlFile + "\n"}
	broker, err := fleet.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { broker.Stop() }()

	// The EST server, as a master runs it, from the same CA directory.
	srvPair, err := ca.Issue(pki.IssueOptions{CN: "master.test", Server: true, SANs: []string{"127.0.0.1"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.CA.Cert)
	hs := httptest.NewUnstartedServer(est.NewHandler(&estAuthority{dir: ca, days: 90, now: time.Now}, est.ServerOptions{}))
	hs.TLS = est.ServerTLSConfig(tls.Certificate{Certificate: [][]byte{srvPair.Cert.Raw}, PrivateKey: srvPair.Key, Leaf: srvPair.Cert}, roots)
	hs.StartTLS()
	defer hs.Close()

	// A device with a 30-day certificate from the CA (the EST server
	// issues 90-day ones, so the status shows the change).
	p, err := ca.Issue(pki.IssueOptions{CN: "dev1", Days: 30}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := p.WriteFiles(dir, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	oldCert, _ := os.ReadFile(certFile)
	oldKey, _ := os.ReadFile(keyFile)
	text := fleet.AgentConfig("dev1", brokertest.Creds{Cert: certFile, Key: keyFile}, broker.Port, "",
		fmt.Sprintf("[enroll]\nserver = %q\n", hs.URL))
	cfg, err := config.Parse("dev1.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}

	clock := clocktest.New(time.Now())
	e := &env{t: t, ctx: ctx, fleet: fleet, broker: broker, mon: fleet.Client(broker, fleet.Monitor)}
	sub := e.sub("edge/dev1/status")
	r := e.startOpts(cfg, Options{Hardware: &sensors.Env{SysRoot: "/sys", ProcRoot: "/proc", Clock: clock}})
	waitMsg(t, sub, `"state":"online"`)
	r.waitLog(t, "certificate renewal scheduled", 5*time.Second)
	// The renewer's timer is armed just after that line: advance only then.
	deadline := time.Now().Add(5 * time.Second)
	for clock.Timers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the renewer armed no timer within 5s")
		}
		time.Sleep(time.Millisecond)
	}

	// 21 days on, past two thirds of 30 days less the jitter: renew.
	clock.Advance(21 * 24 * time.Hour)
	r.waitLog(t, "certificate renewed", 10*time.Second)
	newCert, _ := os.ReadFile(certFile)
	newKey, _ := os.ReadFile(keyFile)
	if bytes.Equal(oldCert, newCert) || bytes.Equal(oldKey, newKey) {
		t.Fatal("certificate or key file unchanged after renewal (a renewal makes a new key)")
	}
	leaf := r.d.creds.Current().Cert.Leaf
	if leaf.SerialNumber.Cmp(p.Cert.SerialNumber) == 0 {
		t.Fatal("the holder still presents the old certificate")
	}
	if st, _ := os.Stat(keyFile); st.Mode().Perm() != 0o600 {
		t.Errorf("renewed key mode %v, want 0600", st.Mode().Perm())
	}
	// The retained status says the new expiry at once.
	waitMsg(t, sub, `"cert_expires":"`+leaf.NotAfter.UTC().Format(time.RFC3339)+`"`)

	// Revoke the old certificate and restart the broker in place: the agent
	// reconnects by itself, and only the new certificate can get in.
	if _, err := ca.Revoke("", p.Cert.SerialNumber, time.Now()); err != nil {
		t.Fatal(err)
	}
	writeCRL()
	broker.Stop()
	opts.Port = broker.Port
	if broker, err = fleet.Start(ctx, opts); err != nil {
		t.Fatal(err)
	}
	e.broker = broker
	sub2, err := fleet.Client(broker, fleet.Monitor).Subscribe(ctx, "edge/dev1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Stop()
	waitMsg(t, sub2, `"state":"online"`)

	// The old certificate is indeed refused now.
	oldPath := filepath.Join(dir, "old")
	if err := os.WriteFile(oldPath+".crt", oldCert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(oldPath+".key", oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	oldClient := &brokertest.Client{Broker: broker, CA: caFile, Cert: oldPath + ".crt", Key: oldPath + ".key"}
	if err := oldClient.Pub(ctx, "edge/dev1/x", []byte("x"), 1, false); err == nil {
		t.Error("the broker accepts the revoked old certificate: the reconnect proves nothing")
	}
	var sn big.Int
	sn.Set(leaf.SerialNumber)
	t.Logf("renewed: serial %s → %s, expires %s", pki.FormatSerial(p.Cert.SerialNumber), pki.FormatSerial(&sn), leaf.NotAfter.Format(time.DateOnly))
}

// waitMsg waits (bounded) for a message containing want.
func waitMsg(t *testing.T, s *brokertest.Sub, want string) string {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-s.Lines:
			if !ok {
				t.Fatalf("subscriber ended before %q", want)
			}
			if bytes.Contains([]byte(l), []byte(want)) {
				return l
			}
		case <-deadline.C:
			t.Fatalf("no message with %q within 15s", want)
		}
	}
}
