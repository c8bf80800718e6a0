// Package pki makes the certificates a Mosquitto fleet needs: a certificate
// authority, broker certificates whose SANs carry the name every client dials,
// and device certificates whose CN is the device id.
//
// It is the Go replacement for the openssl recipes in the seed tutorials, used
// today by `make demo` and the integration tests to build throwaway PKIs, and
// the base the `agent ca` commands grow from.
//
//	ca, _ := pki.NewCA("Fleet CA", 0)
//	broker, _ := ca.Issue(pki.Template{CN: "broker.test", DNSNames: []string{"broker.test"}, Server: true})
//	_ = broker.WriteFiles(dir, "broker") // broker.crt (0644), broker.key (0600)
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DefaultValidity is the lifetime of certificates issued without NotAfter.
const DefaultValidity = 365 * 24 * time.Hour

// Pair is a certificate with its private key, in parsed and PEM forms.
type Pair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte // PKCS#8
}

// CA is a certificate authority that can issue certificates.
type CA struct {
	Pair
}

// Template describes a certificate to issue. The zero values give an ECDSA
// P-256 key valid from one minute ago for DefaultValidity.
type Template struct {
	CN       string
	DNSNames []string
	IPs      []net.IP
	// Server and Client select the extended key usages; neither means both.
	Server, Client bool
	// RSABits selects an RSA key of that size instead of ECDSA P-256.
	RSABits   int
	NotBefore time.Time
	NotAfter  time.Time
}

// NewCA makes a self-signed CA. rsaBits 0 selects ECDSA P-256.
func NewCA(cn string, rsaBits int) (*CA, error) {
	key, err := newKey(rsaBits)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(10 * DefaultValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	p, err := sign(tmpl, tmpl, key.Public(), key, key)
	if err != nil {
		return nil, fmt.Errorf("pki: self-sign CA %q: %w", cn, err)
	}
	return &CA{Pair: *p}, nil
}

// Issue makes a key and a certificate signed by the CA.
func (ca *CA) Issue(t Template) (*Pair, error) {
	if t.CN == "" && len(t.DNSNames) == 0 && len(t.IPs) == 0 {
		return nil, errors.New("pki: issue: template names no subject (set CN, DNSNames or IPs)")
	}
	key, err := newKey(t.RSABits)
	if err != nil {
		return nil, err
	}
	nb, na := t.NotBefore, t.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	if na.IsZero() {
		na = nb.Add(DefaultValidity)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: t.CN},
		DNSNames:     t.DNSNames,
		IPAddresses:  t.IPs,
		NotBefore:    nb,
		NotAfter:     na,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if _, isRSA := key.(*rsa.PrivateKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if t.Server || !t.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if t.Client || !t.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	p, err := sign(tmpl, ca.Cert, key.Public(), ca.Key, key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %q: %w", t.CN, err)
	}
	return p, nil
}

// WriteFiles writes dir/name.crt (0644) and dir/name.key (0600) and returns
// their paths.
func (p *Pair) WriteFiles(dir, name string) (certPath, keyPath string, err error) {
	certPath = filepath.Join(dir, name+".crt")
	keyPath = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, p.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("pki: %w", err)
	}
	if err := os.WriteFile(keyPath, p.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("pki: %w", err)
	}
	return certPath, keyPath, nil
}

func newKey(rsaBits int) (crypto.Signer, error) {
	if rsaBits > 0 {
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, fmt.Errorf("pki: generate RSA-%d key: %w", rsaBits, err)
		}
		return k, nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate P-256 key: %w", err)
	}
	return k, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux ≥ 3.17
	}
	return n
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer, key crypto.Signer) (*Pair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// CRLValidity is how long a CRL from RevocationList stays current.
const CRLValidity = 7 * 24 * time.Hour

// RevocationList returns a PEM CRL signed by the CA that revokes certs as
// of now, numbered by now's Unix time so each new list supersedes the last.
func (ca *CA) RevocationList(certs []*x509.Certificate, now time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, len(certs))
	for i, c := range certs {
		entries[i] = x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(now.Unix()),
		ThisUpdate:                now.Add(-time.Minute),
		NextUpdate:                now.Add(CRLValidity),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// ParseCertFile reads the first PEM certificate in path.
func ParseCertFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("pki: %s: no PEM certificate", path)
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pki: %s: %w", path, err)
			}
			return c, nil
		}
	}
}
