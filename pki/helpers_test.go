package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// t0 is the injected "now" of the directory tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newDir(t *testing.T) *Dir {
	t.Helper()
	d, err := InitDir(filepath.Join(t.TempDir(), "ca"), InitOptions{CN: "Test Fleet CA"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	ecKeyOnce sync.Once
	ecKey     *ecdsa.PrivateKey
)

// deviceKey is one shared P-256 key: the tests are about names and
// policy, not about keys.
func deviceKey(t *testing.T) crypto.Signer {
	ecKeyOnce.Do(func() {
		ecKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	return ecKey
}

func newCSR(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	if key == nil {
		key = deviceKey(t)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func csrCN(t *testing.T, cn string) *x509.CertificateRequest {
	return newCSR(t, nil, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}})
}

func wantErr(t *testing.T, err error, sentinel error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one wrapping %v containing %q", sentinel, substr)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("error %q does not wrap %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Errorf("error %q does not contain %q", err, substr)
	}
}

// openssl runs the openssl command as an independent judge, skipping the
// test when it is not installed.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: skipping the cross-check against it (apt-get install openssl)")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}

func attime(now time.Time) string { return strconv.FormatInt(now.Unix(), 10) }

func writeCert(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "leaf.crt")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// opensslVerify checks that openssl accepts c under d's CA at now, with
// extra flags (e.g. -crl_check -CRLfile …).
func opensslVerify(t *testing.T, d *Dir, c *x509.Certificate, now time.Time, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"verify", "-attime", attime(now), "-CAfile", d.file(CertFile)}, extra...)
	return openssl(t, append(args, writeCert(t, c))...)
}

func mustVerify(t *testing.T, d *Dir, c *x509.Certificate, now time.Time) {
	t.Helper()
	if out, err := opensslVerify(t, d, c, now); err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify %s: %v\n%s", c.Subject.CommonName, err, out)
	}
}

// opensslExt prints the certificate's EKU and SAN extensions as openssl
// reads them.
func opensslExt(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	out, err := openssl(t, "x509", "-noout", "-ext", "extendedKeyUsage,subjectAltName", "-in", writeCert(t, c))
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	return out
}
