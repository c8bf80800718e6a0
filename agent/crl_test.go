package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

// TestKeepCRL: the master installs the CA's CRL at crl.file and makes the
// real Mosquitto reload it only when it changed, regenerates it once half
// its validity has passed (an expired CRL locks every client out), and
// refuses to signal a process that is not Mosquitto.
func TestKeepCRL(t *testing.T) {
	if err := brokertest.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	start := time.Now()
	ca, err := pki.InitDir(filepath.Join(dir, "ca"), pki.InitOptions{}, start)
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := brokertest.FleetWithCA(dir, ca.CA, filepath.Join(ca.Path, pki.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	crlFile, pidFile := filepath.Join(dir, "broker.crl"), filepath.Join(dir, "mosquitto.pid")
	first, _, err := ca.ReadCRL()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crlFile, first, 0o644); err != nil {
		t.Fatal(err)
	}
	broker, err := fleet.Start(ctx, brokertest.Options{Extra: "crlfile " + crlFile + "\npid_file " + pidFile + "\n"})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Stop()

	now := start
	d := &Daemon{ca: ca, now: func() time.Time { return now },
		cfg: &config.Config{CRL: config.CRL{File: crlFile, PIDFile: pidFile}}}
	log := slog.New(slog.DiscardHandler)
	reloads := func() int { return strings.Count(broker.Log(), "Reloading config") }

	// Fresh and already installed: nothing to do.
	if err := d.keepCRL(log); err != nil {
		t.Fatal(err)
	}
	if n := reloads(); n != 0 {
		t.Errorf("%d reloads for an unchanged CRL", n)
	}

	// A revocation from the CLI: installed and reloaded.
	p, err := ca.Issue(pki.IssueOptions{CN: "dev1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Revoke("dev1", nil, now); err != nil {
		t.Fatal(err)
	}
	if err := d.keepCRL(log); err != nil {
		t.Fatal(err)
	}
	installed := parseCRL(t, crlFile)
	if len(installed.RevokedCertificateEntries) != 1 || installed.RevokedCertificateEntries[0].SerialNumber.Cmp(p.Cert.SerialNumber) != 0 {
		t.Errorf("installed CRL revokes %v, want dev1's serial", installed.RevokedCertificateEntries)
	}
	waitFor(t, func() bool { return reloads() == 1 }, "Mosquitto to reload once after the revocation")

	// Four days on, less than half of the 7-day validity is left: a new
	// CRL with a higher number and a later nextUpdate.
	now = start.Add(4 * 24 * time.Hour)
	if err := d.keepCRL(log); err != nil {
		t.Fatal(err)
	}
	renewed := parseCRL(t, crlFile)
	if renewed.Number.Cmp(installed.Number) <= 0 || !renewed.NextUpdate.After(installed.NextUpdate) {
		t.Errorf("CRL number %v → %v, nextUpdate %v → %v: want both to grow", installed.Number, renewed.Number, installed.NextUpdate, renewed.NextUpdate)
	}
	waitFor(t, func() bool { return reloads() == 2 }, "Mosquitto to reload the regenerated CRL")

	// A pid file naming another process, or none running.
	for _, c := range []struct{ pid, want string }{
		{strconv.Itoa(os.Getpid()), "not mosquitto: not signalling it"},
		{"999999999", "not running"},
		{"garbage", "not a process id"},
	} {
		bad := filepath.Join(dir, "bad.pid")
		if err := os.WriteFile(bad, []byte(c.pid), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := reloadBroker(bad); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("pid %s: %v; want %q", c.pid, err, c.want)
		}
	}
}

func parseCRL(t *testing.T, path string) *x509.RevocationList {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(bytes.TrimSpace(data))
	if b == nil {
		t.Fatalf("%s: no PEM", path)
	}
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// waitFor polls cond (bounded).
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
