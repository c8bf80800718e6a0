package est_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/edgeagent/agent/pki/est"
)

// A device's first boot: trust only the CA file shipped on the image,
// enroll with the one-time token, keep the certificate; later, renew with
// the certificate itself.
func ExampleClient() {
	ctx := context.Background()
	caPEM, err := os.ReadFile("/etc/agent/fleet-ca.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c := &est.Client{URL: "https://est.fleet.example:8443", Roots: roots, Timeout: 30 * time.Second}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-0042"}}, key)
	cert, err := c.Enroll(ctx, "dev-0042", os.Getenv("ENROLL_TOKEN"), csr)
	if err != nil {
		// e.g. "est: simpleenroll at https://…/simpleenroll: token refused by the server: unknown device or wrong token"
		fmt.Println(err)
		return
	}

	// Renewal: the current certificate authenticates; the CSR may carry a new key.
	current := tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr2, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: cert.Subject}, newKey)
	if _, err := c.Reenroll(ctx, current, csr2); err != nil {
		fmt.Println(err)
	}
}

// The server side: an Authority with the fleet's policy behind the
// protocol handler, on a TLS listener that asks for (but does not require)
// client certificates.
func ExampleNewHandler() {
	var authority est.Authority // the fleet CA and its token store
	var serverCert tls.Certificate
	var fleetCA *x509.CertPool

	srv := &http.Server{
		Addr:              ":8443",
		Handler:           est.NewHandler(authority, est.ServerOptions{Logger: slog.Default()}),
		TLSConfig:         est.ServerTLSConfig(serverCert, fleetCA),
		ReadHeaderTimeout: 10 * time.Second,
	}
	_ = srv.ListenAndServeTLS("", "")
}
