package tlsclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Holder hands the current client certificate to crypto/tls through
// GetClientCertificate, so a renewal only swaps the credentials: the next
// handshake presents the new certificate and no reconnect code is involved.
// It is safe for concurrent use.
type Holder struct {
	cur atomic.Pointer[Credentials]
}

// NewHolder returns a Holder presenting c.
func NewHolder(c *Credentials) *Holder {
	h := &Holder{}
	h.cur.Store(c)
	return h
}

// Swap makes c the credentials of the following handshakes. A nil c is
// ignored, so a failed reload can never leave the agent with no certificate.
func (h *Holder) Swap(c *Credentials) {
	if c != nil {
		h.cur.Store(c)
	}
}

// Current returns the credentials presented now.
func (h *Holder) Current() *Credentials { return h.cur.Load() }

// getClientCertificate always offers our certificate, even when the broker's
// list of acceptable CAs does not name our issuer: the broker's refusal then
// comes back as an alert Explain can decode, which is clearer than sending
// nothing.
func (h *Holder) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c := h.Current()
	if c == nil {
		return nil, errors.New("tlsclient: no client certificate loaded")
	}
	cert := c.Cert
	return &cert, nil
}

// Config returns the client tls.Config for the broker at serverName: only the
// roots of h's CA file are trusted (never the system roots), the broker's
// certificate must be valid for serverName whatever address is dialled, TLS
// 1.2 is the minimum, and the client certificate comes from h at each
// handshake.
//
// The trusted roots are those of h's credentials when Config is called: a
// swap that changes the CA file needs a new Config, a renewed client
// certificate does not.
//
// legacyCN accepts a broker certificate without subjectAltName whose CN
// equals serverName, which Go's verifier refuses since Go 1.15. The chain is
// still verified against the same roots, for server authentication, at the
// current time; a certificate that has SANs is still checked against them.
func Config(h *Holder, serverName string, legacyCN bool) *tls.Config {
	roots := x509.NewCertPool() // empty, not nil: nil would mean the system roots
	if c := h.Current(); c != nil && c.Roots != nil {
		roots = c.Roots
	}
	cfg := &tls.Config{
		RootCAs:              roots,
		ServerName:           serverName,
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: h.getClientCertificate,
	}
	if legacyCN {
		// crypto/tls cannot be told to accept a CN, so its verification is
		// switched off and VerifyConnection does all of it again itself.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyLegacy(cs, roots, serverName, cfg.Time)
		}
	}
	return cfg
}

// verifyLegacy is crypto/tls's server verification with one difference: a
// leaf without any subjectAltName is accepted when its CN is serverName.
func verifyLegacy(cs tls.ConnectionState, roots *x509.CertPool, serverName string, clock func() time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tlsclient: the broker sent no certificate")
	}
	if serverName == "" {
		return errors.New("tlsclient: no server name to verify the broker certificate against")
	}
	now := time.Now()
	if clock != nil {
		now = clock()
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	if hasSANs(leaf) {
		if err := leaf.VerifyHostname(serverName); err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		return nil
	}
	if cn := leaf.Subject.CommonName; cn == "" || !strings.EqualFold(cn, serverName) {
		return &legacyNameError{cn: cn, host: serverName}
	}
	return nil
}

func hasSANs(c *x509.Certificate) bool {
	return len(c.DNSNames) > 0 || len(c.IPAddresses) > 0 || len(c.EmailAddresses) > 0 || len(c.URIs) > 0
}

// legacyNameError is legacyCN's refusal of a SAN-less certificate whose CN
// is not the expected name.
type legacyNameError struct{ cn, host string }

func (e *legacyNameError) Error() string {
	return fmt.Sprintf("tlsclient: broker certificate has no subjectAltName and CN %q, not %q", e.cn, e.host)
}
