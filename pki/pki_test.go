package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIssueVerifies(t *testing.T) {
	ca, err := NewCA("Test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue(Template{CN: "broker.test", DNSNames: []string{"broker.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "broker.test", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("server cert: %v", err)
	}
	cli, err := ca.Issue(Template{CN: "dev1", Client: true, RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cli.Key.(*rsa.PrivateKey); !ok {
		t.Errorf("RSABits gave %T", cli.Key)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert: %v", err)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client-only cert verifies for server use")
	}
	exp := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	old, err := ca.Issue(Template{CN: "old", NotBefore: exp.Add(-time.Hour), NotAfter: exp})
	if err != nil || !old.Cert.NotAfter.Equal(exp) {
		t.Errorf("NotAfter = %v, %v", old.Cert.NotAfter, err)
	}
	if _, err := ca.Issue(Template{}); err == nil {
		t.Error("a template with no subject was issued")
	}
}

func TestWriteFilesModes(t *testing.T) {
	ca, err := NewCA("Test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, k, err := ca.Pair.WriteFiles(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{c: 0o644, k: 0o600} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", filepath.Base(p), st.Mode().Perm(), want)
		}
	}
}
