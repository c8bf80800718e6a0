package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeagent/agent/pki"
)

// A CA directory's life: init, a broker certificate, a device enrolled
// with a one-time token, then revoked.
func ExampleDir() {
	tmp, _ := os.MkdirTemp("", "ca-example")
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "ca")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	d, err := pki.InitDir(dir, pki.InitOptions{CN: "Fleet CA"}, now) // ca.crt, ca.key, ca.crl, index.json
	if err != nil {
		fmt.Println(err)
		return
	}
	broker, _ := d.Issue(pki.IssueOptions{CN: "broker.lan", Server: true, SANs: []string{"192.168.1.10"}}, now)
	fmt.Println("broker SANs:", broker.Cert.DNSNames, broker.Cert.IPAddresses)

	// `agent ca token`; the token travels to the device out of band.
	tok, _ := d.NewToken("kitchen-01", 24*time.Hour, now)
	id, _ := pki.TokenID(tok)
	fmt.Println("token for", id)

	// On the device: a key and a request with CN = the device id.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "kitchen-01"}}, key)
	csr, _ := x509.ParseCertificateRequest(der)

	// The enrollment server.
	cert, err := d.Enroll("kitchen-01", tok, csr, 0, now)
	fmt.Println("enrolled:", cert.Subject.CommonName, cert.NotAfter.Format(time.DateOnly), err)
	_, err = d.Enroll("kitchen-01", tok, csr, 0, now)
	fmt.Println("again:", err != nil)

	if _, err := d.Revoke("kitchen-01", nil, now.Add(time.Hour)); err != nil {
		fmt.Println(err)
	}
	recs, _ := d.List()
	for _, r := range recs {
		fmt.Println(r.CN, r.Via, r.Status(now.Add(time.Hour)))
	}
	// Output:
	// broker SANs: [broker.lan] [192.168.1.10]
	// token for kitchen-01
	// enrolled: kitchen-01 2026-05-30 <nil>
	// again: true
	// broker.lan issue valid
	// kitchen-01 enroll revoked
}
