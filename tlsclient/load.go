// Package tlsclient is the agent's side of mutual TLS with the Mosquitto
// broker: it loads and checks the device's credentials, hands the client
// certificate to crypto/tls through a Holder so a renewal replaces it without
// any reconnect code, builds the tls.Config, dials, and turns the errors of
// all of that into one sentence a person on a serial console can act on.
//
// Credentials are checked when they are loaded, not when the broker refuses
// them: a key readable by others, a certificate that expired, a key that does
// not match, or a certificate the CA file did not sign are each reported with
// the file and the fix, wrapped in ErrCredentials.
//
// The shape of use:
//
//	creds, err := tlsclient.Load(tlsclient.Files{CA: caPath, Cert: certPath, Key: keyPath}, time.Now())
//	if err != nil {
//		return err // errors.Is(err, tlsclient.ErrCredentials): the CLI exits 2
//	}
//	holder := tlsclient.NewHolder(creds)
//	cfg := tlsclient.Config(holder, "broker.example", false)
//	conn, err := tlsclient.Dial(ctx, "broker.example:8883", cfg)
//	if err != nil {
//		log.Error("connect", "err", err, "why", tlsclient.Explain(err, "broker.example"))
//	}
//	// later, after a renewal:
//	holder.Swap(renewed) // the next handshake presents the new certificate
//
// Go checks a broker's host name only against the certificate's
// subjectAltName. Brokers set up after the common tutorials carry the name
// only in the CN; Config's legacyCN mode accepts those, with the same chain
// verification, and only when the CN equals the expected name exactly.
package tlsclient

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/edgeagent/agent/pki"
)

// ErrCredentials is wrapped by every refusal of Load: the files named in the
// tls section of the configuration cannot be used as they are.
var ErrCredentials = errors.New("tls credentials refused")

// MinRSABits is the smallest RSA client key Load accepts.
const MinRSABits = 2048

// Files are the paths of the PEM files from the configuration's tls section.
type Files struct {
	CA   string // tls.ca: the fleet CA certificate(s), the only roots trusted
	Cert string // tls.cert: the client certificate, then any intermediates
	Key  string // tls.key: the client's private key, mode 0600
}

// Credentials are checked, parsed client credentials. They are not modified
// after Load returns them, so they can be shared between goroutines.
type Credentials struct {
	Roots *x509.CertPool  // only the certificates of Files.CA, never the system roots
	Cert  tls.Certificate // with Leaf set
	Files Files
}

// credError is a Load refusal: a sentence for the user that wraps both
// ErrCredentials and the underlying cause, if any.
type credError struct {
	msg   string
	cause error
}

func (e *credError) Error() string { return "load TLS credentials: " + e.msg }

func (e *credError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrCredentials}
	}
	return []error{ErrCredentials, e.cause}
}

func refuse(cause error, format string, args ...any) error {
	return &credError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// Load reads the three files and checks that together they make credentials
// the broker will accept at time now: the key is private to its owner and
// matches the certificate, the certificate is valid at now, is not a weak RSA
// key, and chains to the CA file for client authentication.
func Load(f Files, now time.Time) (*Credentials, error) {
	caPEM, err := readFile("tls.ca", f.CA)
	if err != nil {
		return nil, err
	}
	certPEM, err := readFile("tls.cert", f.Cert)
	if err != nil {
		return nil, err
	}
	if err := checkKeyMode(f.Key); err != nil {
		return nil, err
	}
	keyPEM, err := readFile("tls.key", f.Key)
	if err != nil {
		return nil, err
	}

	cas, err := parseCerts("tls.ca", f.CA, caPEM)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	chain, err := parseCerts("tls.cert", f.Cert, certPEM)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	key, err := parseKey(f.Key, keyPEM)
	if err != nil {
		return nil, err
	}

	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, refuse(nil, "tls.key %s does not match the certificate in tls.cert %s (CN=%s): "+
			"point tls.key at the key the certificate was issued for, or issue a new certificate for this key",
			f.Key, f.Cert, leaf.Subject.CommonName)
	}
	if now.After(leaf.NotAfter) {
		return nil, refuse(nil, "tls.cert %s (CN=%s) expired on %s and cannot be renewed any more: enroll again "+
			"(on the master: agent ca token --id %s; here: agent enroll --ca CA --token TOKEN --overwrite), or check this board's clock",
			f.Cert, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339), leaf.Subject.CommonName)
	}
	if now.Before(leaf.NotBefore) {
		return nil, refuse(nil, "tls.cert %s (CN=%s) is not valid until %s and the clock says %s: "+
			"check this board's clock (without a battery-backed RTC it is wrong until NTP has synced)",
			f.Cert, leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if rk, ok := leaf.PublicKey.(*rsa.PublicKey); ok && rk.N.BitLen() < MinRSABits {
		return nil, refuse(nil, "tls.cert %s has a %d-bit RSA key, below the %d bits required: "+
			"reissue it with an RSA key of %d bits or more, or better an ECDSA P-256 key",
			f.Cert, rk.N.BitLen(), MinRSABits, MinRSABits)
	}

	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return nil, refuse(err, "tls.cert %s (CN=%s, issued by %s) is not signed by a CA in tls.ca %s, "+
				"so the broker would reject it as \"unknown CA\": use the certificate issued by the fleet CA, "+
				"or set tls.ca to the CA that issued it",
				f.Cert, leaf.Subject.CommonName, leaf.Issuer, f.CA)
		}
		var ci x509.CertificateInvalidError
		if errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage {
			return nil, refuse(err, "tls.cert %s (CN=%s) is not valid for TLS client authentication: "+
				"reissue it with extendedKeyUsage=clientAuth", f.Cert, leaf.Subject.CommonName)
		}
		return nil, refuse(err, "tls.cert %s (CN=%s) does not verify against tls.ca %s: %v",
			f.Cert, leaf.Subject.CommonName, f.CA, err)
	}

	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	return &Credentials{
		Roots: roots,
		Cert:  tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf},
		Files: f,
	}, nil
}

func readFile(name, path string) ([]byte, error) {
	if path == "" {
		return nil, refuse(nil, "%s is not set: give the path of the PEM file", name)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var why string
		switch {
		case errors.Is(err, fs.ErrNotExist):
			why = "does not exist"
		case errors.Is(err, fs.ErrPermission):
			why = "is not readable by this user"
		default:
			why = "cannot be read"
		}
		cause := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			cause = pe.Err // the path is in the sentence already
		}
		return nil, refuse(err, "%s %s %s (%v): fix the path in %s or the file", name, path, why, cause, name)
	}
	return data, nil
}

// checkKeyMode refuses a key others can read: the key is the device's
// identity, and Mosquitto's own tooling warns about the same.
func checkKeyMode(path string) error {
	if path == "" {
		return refuse(nil, "tls.key is not set: give the path of the PEM file")
	}
	st, err := os.Stat(path)
	if err != nil {
		_, err := readFile("tls.key", path) // same message as for the other files
		return err
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return refuse(nil, "tls.key %s is readable by group or others (mode %04o): run chmod 600 %s",
			path, mode, path)
	}
	return nil
}

func parseCerts(name, path string, data []byte) ([]*x509.Certificate, error) {
	certs, err := pki.ParseCerts(data)
	if err != nil {
		return nil, refuse(err, "%s %s: %v: replace the file", name, path, err)
	}
	if len(certs) == 0 {
		return nil, refuse(nil, "%s %s holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\" block): "+
			"point %s at the PEM certificate file", name, path, name)
	}
	return certs, nil
}

func parseKey(path string, data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED" {
			return nil, refuse(nil, "tls.key %s is protected by a passphrase, which the agent cannot enter: "+
				"store it unencrypted with openssl pkey -in %s -out %s (then chmod 600 %s)", path, path, path, path)
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		}
		if err != nil {
			return nil, refuse(err, "tls.key %s holds a %s block that does not parse (%v): replace the file with the device's PEM key",
				path, b.Type, err)
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, refuse(nil, "tls.key %s holds a %T key, which TLS cannot use: use an ECDSA P-256 or RSA key", path, k)
		}
	}
	return nil, refuse(nil, "tls.key %s holds no PEM private key (no \"-----BEGIN ... PRIVATE KEY-----\" block): "+
		"point tls.key at the device's PEM key", path)
}
