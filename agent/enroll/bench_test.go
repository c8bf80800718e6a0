package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeagent/agent/pki"
	"github.com/edgeagent/agent/pki/est"
)

// dirAuthority serves a CA directory over EST (what the master does; the
// master's own adapter lives in package agent).
type dirAuthority struct{ d *pki.Dir }

func (a dirAuthority) CACerts(context.Context) ([]*x509.Certificate, error) {
	return []*x509.Certificate{a.d.CA.Cert}, nil
}
func (a dirAuthority) Enroll(_ context.Context, id, tok string, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	return a.d.Enroll(id, tok, csr, 90, time.Now())
}
func (a dirAuthority) Reenroll(_ context.Context, cur *x509.Certificate, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	return a.d.Reenroll(cur, csr, 90, time.Now())
}

// BenchmarkEnrollRoundTrip is one whole enrollment as `agent enroll` does
// it, over loopback: key generation, CSR, a new TLS connection to the EST
// server, the token checked and spent, the certificate signed and recorded
// (fsynced index), the answer verified and the three files written.
func BenchmarkEnrollRoundTrip(b *testing.B) {
	d, err := pki.InitDir(filepath.Join(b.TempDir(), "ca"), pki.InitOptions{}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	srvPair, err := d.Issue(pki.IssueOptions{CN: "master.test", Server: true, SANs: []string{"127.0.0.1"}}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(d.CA.Cert)
	hs := httptest.NewUnstartedServer(est.NewHandler(dirAuthority{d}, est.ServerOptions{MaxFailures: -1}))
	hs.TLS = est.ServerTLSConfig(tls.Certificate{Certificate: [][]byte{srvPair.Cert.Raw}, PrivateKey: srvPair.Key, Leaf: srvPair.Cert}, roots)
	hs.StartTLS()
	defer hs.Close()
	for _, kt := range []pki.KeyType{pki.KeyEC, pki.KeyRSA2048} {
		b.Run(string(kt), func(b *testing.B) {
			out := b.TempDir()
			for b.Loop() {
				b.StopTimer()
				tok, err := d.NewToken("dev1", time.Hour, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				// A new client each time: a device enrolls once, with a cold
				// connection.
				c := &est.Client{URL: hs.URL, Roots: roots}
				if _, err := Enroll(context.Background(), c, Request{ID: "dev1", Token: tok, CAPEM: d.CA.CertPEM, Key: kt, Dir: out, Overwrite: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
