// Package pki makes the certificates a Mosquitto fleet needs: a certificate
// authority, broker certificates whose SANs carry the name every client dials,
// and device certificates whose CN is the device id.
//
// At its base, CA and Template are the Go replacement for the openssl recipes
// in the seed tutorials; `make demo` and the integration tests build
// throwaway PKIs with them:
//
//	ca, _ := pki.NewCA("Fleet CA", 0)
//	broker, _ := ca.Issue(pki.Template{CN: "broker.test", DNSNames: []string{"broker.test"}, Server: true})
//	_, _, _ = broker.WriteFiles(dir, "broker") // broker.crt (0644), broker.key (0600)
//
// # The CA directory
//
// Dir is the CA the `agent ca` commands and the enrollment server share,
// kept in one directory:
//
//	ca.crt      the CA certificate (0644): every broker's cafile, every device's trust anchor
//	ca.key      its private key (0600; OpenDir refuses a looser mode)
//	ca.crl      the CRL, signed by ca.key (0644): Mosquitto's crlfile
//	index.json  issued certificates, revocations, hashed enrollment tokens, the CRL number (0600)
//	index.lock  flocked across every read-modify-write
//
// Every write goes through internal/atomicfile, so a crash leaves the old
// file or the new one. Every change takes the flock, re-reads index.json and
// writes it back once, so `agent ca token` can run while the master process
// enrolls devices. A device enrolls once with a one-time token bound to its
// id, then renews with its current certificate:
//
//	d, _ := pki.InitDir(dir, pki.InitOptions{}, now)                         // ca init
//	srv, _ := d.Issue(pki.IssueOptions{CN: "broker.lan", Server: true}, now) // ca issue --server
//	tok, _ := d.NewToken("kitchen-01", 24*time.Hour, now)                    // ca token
//	cert, _ := d.Enroll("kitchen-01", tok, csr, 0, now)                      // EST simpleenroll
//	cert, _ = d.Reenroll(cert, csr2, 0, now)                                 // EST simplereenroll
//	_, _ = d.Revoke("kitchen-01", nil, now)                                  // ca revoke: rewrites ca.crl
//	_, _, _ = d.RefreshCRL(now, 2*24*time.Hour)                              // the master, periodically
//
// Refusals wrap ErrExists, ErrPolicy, ErrToken, ErrNotFound, ErrRevoked or
// ErrLocked, and say what to do about them.
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

	"github.com/edgeagent/agent/internal/atomicfile"
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
	// Serial is the certificate's serial number; nil picks a random one.
	Serial *big.Int
}

// NewCA makes a self-signed CA valid from a minute ago for ten times
// DefaultValidity. rsaBits 0 selects ECDSA P-256.
func NewCA(cn string, rsaBits int) (*CA, error) {
	return NewCAWith(CAOptions{CN: cn, RSABits: rsaBits})
}

// CAOptions describes a CA to make. The zero values give an ECDSA P-256 key
// valid from one minute ago for ten times DefaultValidity.
type CAOptions struct {
	CN string
	// RSABits selects an RSA key of that size instead of ECDSA P-256.
	RSABits   int
	NotBefore time.Time
	NotAfter  time.Time
	// Serial is the certificate's serial number; nil picks a random one.
	Serial *big.Int
}

// NewCAWith makes a self-signed CA as o describes.
func NewCAWith(o CAOptions) (*CA, error) {
	key, err := newKey(o.RSABits)
	if err != nil {
		return nil, err
	}
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	if na.IsZero() {
		na = nb.Add(10 * DefaultValidity)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: o.CN},
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	p, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: self-sign CA %q: %w", o.CN, err)
	}
	if err := p.addKey(key); err != nil {
		return nil, fmt.Errorf("pki: self-sign CA %q: %w", o.CN, err)
	}
	return &CA{Pair: *p}, nil
}

// Issue makes a key and a certificate signed by the CA.
func (ca *CA) Issue(t Template) (*Pair, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	key, err := newKey(t.RSABits)
	if err != nil {
		return nil, err
	}
	p, err := ca.issue(t, key.Public())
	if err != nil {
		return nil, err
	}
	if err := p.addKey(key); err != nil {
		return nil, fmt.Errorf("pki: issue %q: %w", t.CN, err)
	}
	return p, nil
}

// IssueFor signs a certificate for a public key whose private half the CA
// never sees, such as the one in a certificate request. The Pair it returns
// has no Key or KeyPEM; t.RSABits is ignored.
func (ca *CA) IssueFor(pub crypto.PublicKey, t Template) (*Pair, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return ca.issue(t, pub)
}

func (t Template) check() error {
	if t.CN == "" && len(t.DNSNames) == 0 && len(t.IPs) == 0 {
		return errors.New("pki: issue: template names no subject (set CN, DNSNames or IPs)")
	}
	return nil
}

func (ca *CA) issue(t Template, pub crypto.PublicKey) (*Pair, error) {
	nb, na := t.NotBefore, t.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	if na.IsZero() {
		na = nb.Add(DefaultValidity)
	}
	sn := t.Serial
	if sn == nil {
		sn = serial()
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: t.CN},
		DNSNames:     t.DNSNames,
		IPAddresses:  t.IPs,
		NotBefore:    nb,
		NotAfter:     na,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if _, isRSA := pub.(*rsa.PublicKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if t.Server || !t.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if t.Client || !t.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	p, err := sign(tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %q: %w", t.CN, err)
	}
	return p, nil
}

// WriteFiles writes dir/name.crt (0644) and dir/name.key (0600) and returns
// their paths. Both files are written atomically and renamed into place
// together, so a crash never leaves a new certificate beside an old key.
func (p *Pair) WriteFiles(dir, name string) (certPath, keyPath string, err error) {
	certPath = filepath.Join(dir, name+".crt")
	keyPath = filepath.Join(dir, name+".key")
	var s atomicfile.Set
	defer s.Abort()
	if err := s.Add(keyPath, p.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("pki: %w", err)
	}
	if err := s.Add(certPath, p.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("pki: %w", err)
	}
	if err := s.Commit(); err != nil {
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

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*Pair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Pair{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

func (p *Pair) addKey(key crypto.Signer) error {
	kpem, err := MarshalKey(key)
	if err != nil {
		return err
	}
	p.Key, p.KeyPEM = key, kpem
	return nil
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
	return ca.SignCRL(entries, big.NewInt(now.Unix()), now)
}

// SignCRL returns a PEM CRL signed by the CA listing entries, with CRL
// number number, thisUpdate a minute before now (for clocks slightly
// behind) and nextUpdate CRLValidity after now.
func (ca *CA) SignCRL(entries []x509.RevocationListEntry, number *big.Int, now time.Time) ([]byte, error) {
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
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
	certs, err := ParseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("pki: %s: no PEM certificate", path)
	}
	return certs[0], nil
}

// ParseCerts returns the certificates of data's PEM "CERTIFICATE" blocks,
// in order, skipping other blocks; none is not an error (the caller says
// what was expected). A block that does not parse is.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return certs, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
}
