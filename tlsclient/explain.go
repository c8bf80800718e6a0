package tlsclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// Explain turns an error of Dial, of the handshake, or of a later Read or
// Write on the connection into one sentence that names the cause and the fix.
// serverName is the name the broker was expected to have (broker.host, the
// TLS ServerName whatever address is dialled). Errors it does not recognise, and Load's
// refusals, come back as err.Error(); a nil error gives "".
func Explain(err error, serverName string) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, ErrCredentials) {
		// Load's refusals are sentences already, and may wrap x509 errors
		// about our own certificate that must not read as the broker's.
		return err.Error()
	}
	var (
		dialErr *DialError
		addr    = "the broker"
		stage   string
	)
	if errors.As(err, &dialErr) {
		addr, stage = dialErr.Addr, dialErr.Stage
	}

	if le, ok := errors.AsType[*legacyNameError](err); ok {
		return fmt.Sprintf("The broker certificate is for CN=%s, not %q (it has no subjectAltName): "+
			"connect to the broker under the name %q, or reissue its certificate with subjectAltName=DNS:%s.",
			le.cn, le.host, le.cn, le.host)
	}
	if he, ok := errors.AsType[x509.HostnameError](err); ok {
		return explainHostname(he, serverName)
	}
	if ua, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return explainUnknownAuthority(ua)
	}
	if ci, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return explainInvalid(ci)
	}
	if s, ok := explainAlert(err); ok {
		return s
	}
	if strings.Contains(err.Error(), "server selected unsupported protocol version") {
		return fmt.Sprintf("The broker at %s offered a TLS version below 1.2, which the agent refuses: "+
			"set tls_version tlsv1.2 (or tlsv1.3) on the Mosquitto listener.", addr)
	}
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok {
		if dnsErr.IsTimeout {
			return fmt.Sprintf("Looking up the broker name %q timed out: check the DNS server in /etc/resolv.conf, "+
				"add the broker to /etc/hosts, or set broker.address to its IP.", dnsErr.Name)
		}
		return fmt.Sprintf("The broker name %q does not resolve: add it to /etc/hosts, set broker.address to "+
			"the broker's IP or a name that resolves.", dnsErr.Name)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("Nothing listens on %s (connection refused): is Mosquitto running, and is its TLS listener "+
			"(listener 8883 in mosquitto.conf) on that address and port?", addr)
	}
	if errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return fmt.Sprintf("No route to %s: check the network link of this board and the broker address.", addr)
	}
	if isTimeout(err) {
		switch stage {
		case stageConnect:
			return fmt.Sprintf("Connecting to %s timed out: check that the broker is up and that no firewall "+
				"drops the port.", addr)
		case stageHandshake:
			return fmt.Sprintf("The TLS handshake with %s timed out: the port accepts connections but does not "+
				"answer TLS; check that it is Mosquitto's TLS listener (8883) and that the broker is not overloaded.", addr)
		}
		return fmt.Sprintf("The broker at %s did not answer in time: check that it is up and reachable.", addr)
	}
	if strings.Contains(err.Error(), "first record does not look like a TLS handshake") {
		return fmt.Sprintf("%s answered, but not with TLS: broker.address names a plain listener "+
			"(MQTT without TLS listens on 1883); use the TLS listener, usually 8883.", capitalise(addr))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		if stage == stageHandshake {
			return fmt.Sprintf("%s closed the connection during the TLS handshake: is it a TLS listener? "+
				"A plain MQTT listener (1883) drops a TLS hello; use the TLS listener, usually 8883, "+
				"and see the broker log.", capitalise(addr))
		}
		return fmt.Sprintf("%s closed the connection: its log says why (a refused client certificate, "+
			"a refused CONNECT, or a restart).", capitalise(addr))
	}
	return err.Error()
}

func capitalise(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

func explainHostname(he x509.HostnameError, serverName string) string {
	host := he.Host
	if host == "" {
		host = serverName
	}
	c := he.Certificate
	if c == nil {
		return he.Error()
	}
	if hasSANs(c) {
		return fmt.Sprintf("The broker certificate is for %s, not %q: set broker.host to "+
			"one of those names, or reissue the broker certificate with %s.",
			strings.Join(certNames(c), ", "), host, sanFor(host))
	}
	cn := c.Subject.CommonName
	if strings.EqualFold(cn, host) {
		return fmt.Sprintf("The broker certificate has no subjectAltName (only CN=%s), and Go checks names only "+
			"against subjectAltName: reissue it with %s, e.g. openssl req -new -key broker.key -subj \"/CN=%s\" "+
			"-addext \"%s\" -out broker.csr and sign it with openssl x509 -req -copy_extensions copy ..., "+
			"or set tls.legacy_cn = true.", cn, sanFor(host), host, sanFor(host))
	}
	return fmt.Sprintf("The broker certificate has no subjectAltName and its CN=%s is not %q either: "+
		"reissue it with %s (e.g. openssl req -new -key broker.key -subj \"/CN=%s\" -addext \"%s\").",
		cn, host, sanFor(host), host, sanFor(host))
}

func sanFor(host string) string {
	if net.ParseIP(host) != nil {
		return "subjectAltName=IP:" + host
	}
	return "subjectAltName=DNS:" + host
}

// certNames lists what a certificate is valid for, SANs first, else the CN.
func certNames(c *x509.Certificate) []string {
	var names []string
	for _, n := range c.DNSNames {
		names = append(names, "DNS:"+n)
	}
	for _, ip := range c.IPAddresses {
		names = append(names, "IP:"+ip.String())
	}
	for _, u := range c.URIs {
		names = append(names, "URI:"+u.String())
	}
	for _, e := range c.EmailAddresses {
		names = append(names, "email:"+e)
	}
	if len(names) == 0 {
		names = append(names, "CN="+c.Subject.CommonName)
	}
	return names
}

func explainUnknownAuthority(ua x509.UnknownAuthorityError) string {
	if ua.Cert == nil {
		return "The broker certificate is signed by a CA that tls.ca does not contain: set tls.ca to the CA " +
			"that issued the broker certificate, or reissue the broker certificate from the fleet CA."
	}
	return fmt.Sprintf("The broker certificate (%s) is signed by %q, which tls.ca does not contain: "+
		"set tls.ca to that CA's certificate, or reissue the broker certificate from the fleet CA.",
		subject(ua.Cert), ua.Cert.Issuer.String())
}

func subject(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return "CN=" + c.Subject.CommonName
	}
	return c.Subject.String()
}

func explainInvalid(ci x509.CertificateInvalidError) string {
	c := ci.Cert
	if c == nil {
		return "The broker certificate is invalid: " + ci.Error()
	}
	switch ci.Reason {
	case x509.Expired:
		if strings.Contains(ci.Detail, " is before ") || time.Now().Before(c.NotBefore) {
			return fmt.Sprintf("The broker certificate (%s) is not valid before %s: check this board's clock "+
				"(without a battery-backed RTC it is wrong until NTP has synced), or the broker's certificate dates.",
				subject(c), c.NotBefore.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("The broker certificate (%s) expired on %s: renew the broker certificate "+
			"(or check this board's clock).", subject(c), c.NotAfter.UTC().Format(time.RFC3339))
	case x509.IncompatibleUsage:
		return fmt.Sprintf("The broker certificate (%s) is not valid for TLS server authentication: "+
			"reissue it with extendedKeyUsage=serverAuth.", subject(c))
	case x509.NotAuthorizedToSign:
		return fmt.Sprintf("The broker's chain contains %s, which is not a CA certificate: "+
			"configure Mosquitto's certfile with the broker certificate and real intermediates only.", subject(c))
	}
	return fmt.Sprintf("The broker certificate (%s) is invalid: %s.", subject(c), ci.Error())
}

// alertFix says, for the TLS alerts a broker sends about our client
// certificate or the handshake, what the alert means for the agent. The keys
// are crypto/tls's alert texts (the alert type itself is unexported).
var alertFix = map[string]struct {
	code uint8
	fix  string
}{
	"unknown certificate authority": {48, "the broker does not trust the CA that issued our client certificate: " +
		"its cafile must contain the CA that signed tls.cert, or this device needs a certificate from the fleet CA"},
	"expired certificate": {45, "the broker considers our client certificate expired: renew tls.cert, " +
		"and check the clocks of this board and the broker; if tls.cert is valid, the broker's CRL (crlfile) has " +
		"expired and Mosquitto refuses every client: regenerate it (agent ca crl) and reload Mosquitto"},
	"revoked certificate": {44, "our client certificate is revoked (the broker's CRL lists it): " +
		"this device needs a new certificate"},
	"bad certificate": {42, "the broker refused our client certificate as bad: check that tls.cert was issued " +
		"by the fleet CA for client authentication and see the broker log"},
	"unsupported certificate": {43, "the broker cannot use our client certificate: reissue it with " +
		"extendedKeyUsage=clientAuth and an ECDSA P-256 or RSA-2048+ key"},
	"unknown certificate":  {46, "the broker could not verify our client certificate: see the broker log"},
	"certificate required": {116, "the broker requires a client certificate and got none: set tls.cert and tls.key"},
	"handshake failure": {40, "the broker refused the handshake: it requires a client certificate (set tls.cert " +
		"and tls.key) or shares no cipher suite with the agent; see the broker log"},
	"protocol version not supported": {70, "the broker and the agent share no TLS version: the agent speaks TLS 1.2 " +
		"and 1.3; check tls_version on the Mosquitto listener"},
	"insufficient security level": {71, "the broker requires stronger cryptography than offered: " +
		"see tls_version and ciphers on the Mosquitto listener"},
	"access denied":     {49, "the broker accepted our certificate but denies access: see the broker log"},
	"unrecognized name": {112, "the broker does not know the server name the agent sent: check broker.host"},
	"error decrypting message": {51, "the broker could not verify the signature of our handshake: tls.key probably " +
		"does not belong to tls.cert"},
}

// explainAlert decodes a TLS alert the broker sent: during our handshake it
// is the error of Dial, under TLS 1.3 it is the error of the first Read. Both
// are a *net.OpError{Op: "remote error"} around crypto/tls's unexported
// alert type, whose text is "tls: <alert>"; QUIC-style callers may hand us a
// tls.AlertError instead.
func explainAlert(err error) (string, bool) {
	var text string
	var code uint8
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "remote error" && oe.Err != nil {
		text = strings.TrimPrefix(oe.Err.Error(), "tls: ")
	} else if ae, ok := errors.AsType[tls.AlertError](err); ok {
		text = strings.TrimPrefix(ae.Error(), "tls: ")
		code = uint8(ae)
	} else {
		return "", false
	}
	if a, ok := alertFix[text]; ok {
		return fmt.Sprintf("The broker rejected the connection with TLS alert %q (%d): %s.", text, a.code, a.fix), true
	}
	if code != 0 {
		return fmt.Sprintf("The broker rejected the connection with TLS alert %q (%d): see the broker log.", text, code), true
	}
	return fmt.Sprintf("The broker rejected the connection with TLS alert %q: see the broker log.", text), true
}

// IsAlert reports whether err is a TLS alert the peer sent.
func IsAlert(err error) bool {
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "remote error" {
		return true
	}
	_, ok := errors.AsType[tls.AlertError](err)
	return ok
}

// FetchAlert reads the TLS alert that a failed write can hide. Under TLS
// 1.3 the broker refuses our certificate after the handshake and may reset
// the connection before anything is read: the write fails with "connection
// reset" while the alert that says why sits in the receive buffer. A short
// read (200 ms at most) fetches it; nil when there is none.
func FetchAlert(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil && IsAlert(err) {
		return err
	}
	return nil
}
