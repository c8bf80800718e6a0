package est

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/testlog"
	"github.com/edgeagent/agent/pki"
)

// fakeAuthority is a fleet CA with one-time tokens, as a real Authority
// would be, minus persistence.
type fakeAuthority struct {
	ca *pki.CA

	mu     sync.Mutex
	tokens map[string]string // device id → token, removed when used
}

func newFakeAuthority(t testing.TB, tokens map[string]string) *fakeAuthority {
	t.Helper()
	ca, err := pki.NewCA("Fleet CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeAuthority{ca: ca, tokens: tokens}
}

func (f *fakeAuthority) CACerts(context.Context) ([]*x509.Certificate, error) {
	return []*x509.Certificate{f.ca.Cert}, nil
}

func (f *fakeAuthority) Enroll(_ context.Context, id, token string, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	want, ok := f.tokens[id]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(token)) != 1 {
		return nil, fmt.Errorf("%w: unknown device or wrong token", ErrUnauthorized)
	}
	if csr.Subject.CommonName != id {
		return nil, fmt.Errorf("%w: the CSR names %q, not the device id", ErrForbidden, csr.Subject.CommonName)
	}
	delete(f.tokens, id)
	return f.sign(id, csr.PublicKey)
}

func (f *fakeAuthority) Reenroll(_ context.Context, current *x509.Certificate, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	return f.sign(current.Subject.CommonName, csr.PublicKey)
}

func (f *fakeAuthority) sign(id string, pub crypto.PublicKey) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: id},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca.Cert, pub, f.ca.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// fixture is an EST server on 127.0.0.1 whose TLS certificate and client
// CAs both come from the fleet CA.
type fixture struct {
	auth   *fakeAuthority
	srv    *httptest.Server
	roots  *x509.CertPool
	logs   *syncBuffer
	clock  *fakeClock
	client *Client
}

func newFixture(t *testing.T, tokens map[string]string) *fixture {
	t.Helper()
	f := &fixture{
		auth:  newFakeAuthority(t, tokens),
		logs:  &syncBuffer{},
		clock: &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
	}
	f.roots = poolOf(f.auth.ca.Cert)
	h := NewHandler(f.auth, ServerOptions{
		Logger: newJSONLogger(f.logs),
		Now:    f.clock.Now,
	})
	f.srv = startTLS(t, h, serverCert(t, f.auth.ca), f.roots)
	f.client = &Client{URL: f.srv.URL, Roots: f.roots, Timeout: 10 * time.Second}
	return f
}

func startTLS(t *testing.T, h http.Handler, cert tls.Certificate, clientCAs *x509.CertPool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = ServerTLSConfig(cert, clientCAs)
	// The handshake errors of the refusal tests are expected; keep them
	// out of the test output.
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func serverCert(t testing.TB, ca *pki.CA) tls.Certificate {
	t.Helper()
	p, err := ca.Issue(pki.Template{CN: "est.test", DNSNames: []string{"est.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	return tlsPair(t, p)
}

func tlsPair(t testing.TB, p *pki.Pair) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// newCSR makes a key and a DER CSR with common name cn.
func newCSR(t testing.TB, cn string) (crypto.Signer, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

// tlsCertOf pairs an issued certificate with its key for TLS.
func tlsCertOf(t testing.TB, cert *x509.Certificate, key crypto.Signer) tls.Certificate {
	t.Helper()
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log sink written by server goroutines and read by tests.
type syncBuffer = testlog.Buffer

// newJSONLogger logs everything, debug included, as JSON to w.
func newJSONLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (f *fakeAuthority) caCerts() []*x509.Certificate { return []*x509.Certificate{f.ca.Cert} }
