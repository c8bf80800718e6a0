package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// MinRSABits is the smallest RSA key the directory CA signs for.
const MinRSABits = 2048

var deviceIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidDeviceID reports whether id can name a device: 1 to 64 letters,
// digits, '.', '_' or '-', starting with a letter or digit. The id becomes
// the certificate's CN, which Mosquitto's use_identity_as_username turns
// into the MQTT username that ACL patterns (%u) expand, so it must be
// safe in a topic and a file name.
func ValidDeviceID(id string) error {
	if deviceIDRE.MatchString(id) {
		return nil
	}
	return fmt.Errorf("device id %q: must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. \"kitchen-01\")", id)
}

// parseSAN sorts a subject alternative name into an IP address or a DNS
// name, refusing anything that is neither.
func parseSAN(s string) (net.IP, string, error) {
	if ip := net.ParseIP(s); ip != nil {
		return ip, "", nil
	}
	if why := dnsNameProblem(s); why != "" {
		return nil, "", fmt.Errorf("not a DNS name or IP address: %s", why)
	}
	return nil, s, nil
}

// ValidDNSName reports whether s can be a DNS subjectAltName: a host name
// as RFC 1123 spells it (labels of letters, digits and inner hyphens, at
// most 63 bytes each, 253 in all), optionally with a leading "*." wildcard
// label.
func ValidDNSName(s string) error {
	if why := dnsNameProblem(s); why != "" {
		return fmt.Errorf("%q is not a DNS name: %s", s, why)
	}
	return nil
}

// dnsNameProblem says what keeps s from being a DNS name, "" if nothing.
func dnsNameProblem(s string) string {
	name := strings.TrimPrefix(s, "*.")
	switch {
	case name == "":
		return "empty"
	case len(name) > 253:
		return "longer than 253 bytes"
	case strings.HasSuffix(name, "."):
		return fmt.Sprintf("trailing dot (write %q)", strings.TrimRight(s, "."))
	case strings.Contains(name, "*"):
		return "a wildcard may only be the whole first label (\"*.example.lan\")"
	case strings.Contains(name, "%") && net.ParseIP(name[:strings.IndexByte(name, '%')]) != nil:
		return "an IPv6 zone (%...) cannot go in a certificate; drop it"
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return "empty label"
		}
		if len(label) > 63 {
			return fmt.Sprintf("label %q longer than 63 bytes", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("label %q starts or ends with '-'", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Sprintf("%q is not allowed in a host name (letters, digits, '-' and '.' only)", r)
			}
		}
	}
	return ""
}

// checkPublicKey applies the key policy: RSA of at least MinRSABits,
// ECDSA on P-256, P-384 or P-521, nothing else.
func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return fmt.Errorf("RSA-%d key is too weak: use ECDSA P-256 (openssl ecparam -name prime256v1) or RSA of at least %d bits", n, MinRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("ECDSA curve %s is not accepted: use P-256, P-384 or P-521", k.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("%T keys are not accepted: use ECDSA P-256 or RSA of at least %d bits", pub, MinRSABits)
	}
	return nil
}

var (
	oidExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstraints  = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidEKUServerAuth     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidEKUAnyExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37, 0}
)

// csrNames is what a certificate request may carry into a device
// certificate besides its key: the SANs it asked for.
type csrNames struct {
	DNSNames []string
	IPs      []net.IP
}

// checkCSR applies the enrollment policy to a request for device id and
// returns the SANs to copy. The CA ignores every other requested
// extension, but a request for serverAuth or for a CA certificate is
// refused outright: no honest device asks for one.
func checkCSR(csr *x509.CertificateRequest, id string) (csrNames, error) {
	if csr == nil {
		return csrNames{}, kindf(ErrPolicy, "no certificate request")
	}
	if err := csr.CheckSignature(); err != nil {
		return csrNames{}, kindf(ErrPolicy, "certificate request signature does not verify: %v", err)
	}
	if err := ValidDeviceID(id); err != nil {
		return csrNames{}, kindf(ErrPolicy, "%v", err)
	}
	if cn := csr.Subject.CommonName; cn != id {
		return csrNames{}, kindf(ErrPolicy, "certificate request CN is %q, want the device id %q: regenerate the request with CN=%s", cn, id, id)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return csrNames{}, kindf(ErrPolicy, "certificate request key: %v", err)
	}
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(oidExtKeyUsage):
			var ekus []asn1.ObjectIdentifier
			if rest, err := asn1.Unmarshal(ext.Value, &ekus); err != nil || len(rest) > 0 {
				return csrNames{}, kindf(ErrPolicy, "certificate request has a malformed extendedKeyUsage extension")
			}
			for _, o := range ekus {
				if o.Equal(oidEKUServerAuth) || o.Equal(oidEKUAnyExtKeyUsage) {
					return csrNames{}, kindf(ErrPolicy, "certificate request asks for extendedKeyUsage %s: devices get clientAuth only; drop it from the request (a broker certificate comes from `agent ca issue --server`)", ekuName(o))
				}
			}
		case ext.Id.Equal(oidBasicConstraints):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if rest, err := asn1.Unmarshal(ext.Value, &bc); err != nil || len(rest) > 0 {
				return csrNames{}, kindf(ErrPolicy, "certificate request has a malformed basicConstraints extension")
			}
			if bc.IsCA {
				return csrNames{}, kindf(ErrPolicy, "certificate request asks to be a CA (basicConstraints CA:TRUE): drop it from the request")
			}
		}
	}
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return csrNames{}, kindf(ErrPolicy, "certificate request has email or URI SANs: only DNS names and IP addresses are accepted")
	}
	for _, n := range csr.DNSNames {
		if why := dnsNameProblem(n); why != "" {
			return csrNames{}, kindf(ErrPolicy, "certificate request SAN %q: not a DNS name or IP address: %s", n, why)
		}
	}
	return csrNames{DNSNames: csr.DNSNames, IPs: csr.IPAddresses}, nil
}

func ekuName(o asn1.ObjectIdentifier) string {
	if o.Equal(oidEKUServerAuth) {
		return "serverAuth"
	}
	return "anyExtendedKeyUsage"
}

// sameNameAsCA reports whether a leaf named cn would carry the CA's own
// subject. OpenSSL then takes the leaf for a self-signed certificate and
// fails with "unable to get local issuer certificate" / "unknown CA", the
// trap of every tutorial that reuses the CA's answers for the broker.
// OpenSSL compares names case-insensitively with runs of spaces folded,
// so this does too.
func sameNameAsCA(ca *x509.Certificate, cn string) bool {
	fold := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }
	return fold(ca.Subject.CommonName) == fold(cn)
}
