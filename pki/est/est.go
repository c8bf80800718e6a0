package est

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/smallstep/pkcs7"
)

// PathPrefix is the well-known URI prefix of the EST endpoints (RFC 7030
// §3.2.2); the endpoints are PathPrefix+"/cacerts", "/simpleenroll" and
// "/simplereenroll".
const PathPrefix = "/.well-known/est"

// MaxRequestBody is the largest request body the server reads. A base64 CSR
// with an RSA-4096 key and a few SANs is under 4 KiB.
const MaxRequestBody = 64 << 10

// maxResponseBody bounds what the client reads from a server: a CA bundle
// of a dozen certificates is well under it.
const maxResponseBody = 1 << 20

// Sentinel errors. An Authority wraps one of them to choose the HTTP status
// of a refusal (401, 403, 400); the error's text is sent to the client, so it
// must not hold a secret. The client's *Error matches them too, so callers of
// either side branch with errors.Is.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrBadRequest   = errors.New("bad request")
)

// Media types of RFC 7030 §4.
const (
	mimePKCS10        = "application/pkcs10"
	mimePKCS7         = "application/pkcs7-mime"
	mimePKCS7CertOnly = "application/pkcs7-mime; smime-type=certs-only"
	mimeText          = "text/plain; charset=utf-8"
)

// Endpoint names, also used as the operation in logs and errors.
const (
	opCACerts  = "cacerts"
	opEnroll   = "simpleenroll"
	opReenroll = "simplereenroll"
)

// Error is a refusal from an EST server: what the server said, as seen by
// the Client. Its Error method is a sentence a person at a serial console
// can act on.
type Error struct {
	Op         string        // endpoint: "cacerts", "simpleenroll" or "simplereenroll"
	Status     int           // HTTP status code
	Message    string        // the server's text/plain explanation, trimmed and sanitised
	RetryAfter time.Duration // from Retry-After, zero when absent
}

// Error says what the server refused and why, e.g. "token refused by the
// server: token already used".
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "no explanation given"
	}
	var s string
	switch e.Status {
	case http.StatusUnauthorized:
		switch e.Op {
		case opEnroll:
			s = "token refused by the server: " + msg
		case opReenroll:
			s = "client certificate refused by the server: " + msg
		default:
			s = "credentials refused by the server: " + msg
		}
	case http.StatusForbidden:
		s = "request forbidden by the server: " + msg
	case http.StatusBadRequest:
		s = "server rejected the request as malformed: " + msg
	case http.StatusRequestEntityTooLarge:
		s = "request too large for the server: " + msg
	case http.StatusTooManyRequests:
		s = "too many failed attempts from this address: " + msg
	case http.StatusAccepted:
		// RFC 7030 §4.2.3: the request awaits manual approval.
		s = "enrollment is pending approval at the server: " + msg
	default:
		s = fmt.Sprintf("server answered %d %s: %s", e.Status, http.StatusText(e.Status), msg)
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Is reports whether the refusal's status is the one the sentinel stands for.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	}
	return false
}

// decodeBase64 decodes an EST body. RFC 7030 bodies are base64 as in RFC
// 2045, so line breaks (CRLF or LF) and stray whitespace are dropped first;
// missing padding is tolerated because some clients omit it.
func decodeBase64(body []byte) ([]byte, error) {
	clean := bytes.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, body)
	if len(clean) == 0 {
		return nil, errors.New("empty body")
	}
	enc := base64.StdEncoding
	if len(clean)%4 != 0 && !bytes.ContainsRune(clean, '=') {
		enc = base64.RawStdEncoding
	}
	der := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Decode(der, clean)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	return der[:n], nil
}

// decodeCSR is the server's request decoder: base64 of a DER PKCS#10 whose
// self-signature (the proof that the client holds the key) verifies.
func decodeCSR(body []byte) (*x509.CertificateRequest, error) {
	der, err := decodeBase64(body)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("not a DER PKCS#10 certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature does not verify: %w", err)
	}
	return csr, nil
}

// encodeCerts builds the base64 of a degenerate certs-only PKCS#7, wrapped
// at 64 columns with CRLF as RFC 2045 asks.
func encodeCerts(certs []*x509.Certificate) ([]byte, error) {
	var raw []byte
	for _, c := range certs {
		raw = append(raw, c.Raw...)
	}
	p7, err := pkcs7.DegenerateCertificate(raw)
	if err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString(p7)
	var out bytes.Buffer
	for len(b64) > 64 {
		out.WriteString(b64[:64])
		out.WriteString("\r\n")
		b64 = b64[64:]
	}
	out.WriteString(b64)
	out.WriteString("\r\n")
	return out.Bytes(), nil
}

// decodeCerts is the client's response decoder: base64 of a PKCS#7 holding
// at least one certificate.
func decodeCerts(body []byte) (certs []*x509.Certificate, err error) {
	der, err := decodeBase64(body)
	if err != nil {
		return nil, err
	}
	// The PKCS#7 parser is third-party code fed by the network; a panic in
	// it must become an error, not take the agent down.
	defer func() {
		if r := recover(); r != nil {
			certs, err = nil, fmt.Errorf("malformed PKCS#7 (parser panicked: %v)", r)
		}
	}()
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#7 structure: %w", err)
	}
	if len(p7.Certificates) == 0 {
		return nil, errors.New("PKCS#7 holds no certificates")
	}
	return p7.Certificates, nil
}

// sanitize makes a server's message safe and short for a console: one
// line, printable characters only, at most 300 bytes.
func sanitize(b []byte) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case !unicode.IsPrint(r):
			return -1
		}
		return r
	}, string(b))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}
