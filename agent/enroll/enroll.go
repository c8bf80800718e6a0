// Package enroll is the device's side of its certificate's life: the first
// enrollment with a one-time token (`agent enroll`) and the daemon's renewal
// before expiry, both over EST (RFC 7030) through an Enroller.
//
// The private key is made on the device and never leaves it: only a CSR is
// sent. What comes back is checked before anything is written (it chains to
// the fleet CA for client authentication, carries the device id as CN and
// the key just made), and the files are then written together or not at all,
// so a refused or failed enrollment leaves the directory as it was.
//
//	cert, err := enroll.Enroll(ctx, client, enroll.Request{
//		ID: "dev1", Token: token, CAPEM: caPEM, Dir: "/etc/agent/tls",
//	})
package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeagent/agent/internal/atomicfile"
	"github.com/edgeagent/agent/pki"
	"github.com/edgeagent/agent/tlsclient"
)

// Enroller sends CSRs to a certificate authority; *est.Client is one.
type Enroller interface {
	// Enroll authenticates with the device id and a one-time token.
	Enroll(ctx context.Context, id, token string, csrDER []byte) (*x509.Certificate, error)
	// Reenroll authenticates with the current client certificate.
	Reenroll(ctx context.Context, cert tls.Certificate, csrDER []byte) (*x509.Certificate, error)
}

// File names in a credentials directory; they are the config's defaults
// (tls.ca, tls.cert, tls.key) under /etc/agent/tls.
const (
	CAFile   = "ca.crt"
	CertFile = "device.crt"
	KeyFile  = "device.key"
)

// DirFiles names the credential files in dir.
func DirFiles(dir string) tlsclient.Files {
	return tlsclient.Files{
		CA:   filepath.Join(dir, CAFile),
		Cert: filepath.Join(dir, CertFile),
		Key:  filepath.Join(dir, KeyFile),
	}
}

// ErrExists is returned when enrollment would replace credentials and
// Request.Overwrite is not set.
var ErrExists = errors.New("credentials exist")

// Request is one enrollment.
type Request struct {
	ID    string
	Token string // one-time; never logged or printed
	// CAPEM is the fleet CA certificate(s) the person was given: the only
	// roots the server and the issued certificate are checked against. It is
	// written to Dir as ca.crt.
	CAPEM     []byte
	Key       pki.KeyType // "" is ECDSA P-256
	SANs      []string    // extra DNS names or IPs for the certificate
	Dir       string
	Overwrite bool
}

// Enroll makes a key, has a certificate issued for it through e and writes
// ca.crt, device.crt and device.key (0600) to r.Dir, all or none.
func Enroll(ctx context.Context, e Enroller, r Request) (*x509.Certificate, error) {
	if err := pki.ValidDeviceID(r.ID); err != nil {
		return nil, fmt.Errorf("enroll: --id: %w", err)
	}
	roots, err := ParseCAPEM(r.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("enroll: --ca: %w", err)
	}
	files := DirFiles(r.Dir)
	if err := checkExisting(files, r.CAPEM, r.Overwrite); err != nil {
		return nil, err
	}
	key, err := pki.NewKey(r.Key)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	csr, err := CSR(key, r.ID, r.SANs)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	cert, err := e.Enroll(ctx, r.ID, r.Token, csr)
	if err != nil {
		return nil, fmt.Errorf("enroll as %q: %w", r.ID, err)
	}
	if err := CheckIssued(cert, key, r.ID, roots); err != nil {
		return nil, fmt.Errorf("enroll as %q: %w", r.ID, err)
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	keyPEM, err := pki.MarshalKey(key)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	var set atomicfile.Set
	defer set.Abort()
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{files.Key, keyPEM, 0o600},
		{files.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644},
		{files.CA, r.CAPEM, 0o644},
	} {
		if err := set.Add(f.path, f.data, f.mode); err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
	}
	if err := set.Commit(); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	return cert, nil
}

// checkExisting refuses to replace a key or certificate unless overwrite is
// set. A ca.crt with the same contents is not a replacement.
func checkExisting(f tlsclient.Files, caPEM []byte, overwrite bool) error {
	if overwrite {
		return nil
	}
	var held []string
	for _, p := range []string{f.Key, f.Cert} {
		if _, err := os.Lstat(p); err == nil {
			held = append(held, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("enroll: %w", err)
		}
	}
	if old, err := os.ReadFile(f.CA); err == nil && !bytes.Equal(old, caPEM) {
		held = append(held, f.CA+" (a different CA)")
	}
	if len(held) > 0 {
		return fmt.Errorf("enroll: %s already exist: this device is enrolled; pass --overwrite to replace them (the old certificate stops being used), or --dir for another directory: %w",
			strings.Join(held, ", "), ErrExists)
	}
	return nil
}

// ParseCAPEM returns a pool of the CA certificates in data, refusing data
// that holds none or holds a certificate that is not a CA.
func ParseCAPEM(data []byte) (*x509.CertPool, error) {
	certs, err := pki.ParseCerts(data)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("holds no PEM certificate: give the fleet CA's ca.crt")
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		if !c.IsCA {
			return nil, fmt.Errorf("the certificate %q is not a CA certificate (no basicConstraints CA:TRUE): give the fleet CA's ca.crt", c.Subject)
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// CSR returns a DER certificate request for key with CN=id and the given
// extra names (DNS names or IP addresses).
func CSR(key crypto.Signer, id string, sans []string) ([]byte, error) {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("make CSR: %w", err)
	}
	return der, nil
}

// CheckIssued verifies what a server sent back before anything is written:
// the certificate is for key, names id and chains to roots for client
// authentication.
func CheckIssued(cert *x509.Certificate, key crypto.Signer, id string, roots *x509.CertPool) error {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return errors.New("the server returned a certificate for another key: refusing it")
	}
	if cert.Subject.CommonName != id {
		return fmt.Errorf("the server returned a certificate for CN %q, not %q: refusing it", cert.Subject.CommonName, id)
	}
	// Checked at the middle of its validity, not by this board's clock,
	// which is often wrong at first boot (no RTC, NTP not synced yet).
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("the issued certificate does not verify against the CA file for client authentication: %w", err)
	}
	return nil
}
