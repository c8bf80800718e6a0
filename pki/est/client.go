package est

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout bounds a Client request when Client.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Client talks to one EST server. The zero value is not usable: URL and
// Roots are required. A Client holds no connections between calls.
type Client struct {
	// URL is the server, "https://host:port". PathPrefix is appended
	// unless URL has a path of its own, such as an EST label
	// ("https://host/.well-known/est/fleet").
	URL string
	// Roots are the only CAs the server's certificate may chain to; the
	// system pool is never used, so nil is an error.
	Roots *x509.CertPool
	// ServerName, when set, is the name checked in the server's
	// certificate instead of URL's host.
	ServerName string
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
}

// CACerts fetches the server's CA certificates (RFC 7030 §4.1), fleet CA
// first. They come over a connection verified with Roots; whether to trust
// them beyond that is the caller's decision.
func (c *Client) CACerts(ctx context.Context) ([]*x509.Certificate, error) {
	body, err := c.do(ctx, opCACerts, http.MethodGet, nil, nil, func(r *http.Request) {
		r.Header.Set("Accept", mimePKCS7)
	})
	if err != nil {
		return nil, err
	}
	certs, err := decodeCerts(body)
	if err != nil {
		return nil, fmt.Errorf("est: cacerts from %s: response %w", c.URL, err)
	}
	return certs, nil
}

// Enroll asks for a first certificate (RFC 7030 §4.2.1), authenticating as
// device id with its one-time token, and returns the certificate for
// csrDER's key.
func (c *Client) Enroll(ctx context.Context, id, token string, csrDER []byte) (*x509.Certificate, error) {
	if id == "" || strings.Contains(id, ":") {
		return nil, fmt.Errorf("est: simpleenroll: device id %q is empty or holds a colon, which HTTP Basic cannot carry", id)
	}
	if token == "" {
		return nil, fmt.Errorf("est: simpleenroll as %q: empty token", id)
	}
	return c.enroll(ctx, opEnroll, csrDER, nil, func(r *http.Request) { r.SetBasicAuth(id, token) })
}

// Reenroll asks for a successor of cert (RFC 7030 §4.2.2), authenticating
// with cert itself as the TLS client certificate, and returns the
// certificate for csrDER's key. The CSR may use a new key.
func (c *Client) Reenroll(ctx context.Context, cert tls.Certificate, csrDER []byte) (*x509.Certificate, error) {
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, errors.New("est: simplereenroll: the current certificate or its key is missing")
	}
	return c.enroll(ctx, opReenroll, csrDER, &cert, nil)
}

func (c *Client) enroll(ctx context.Context, op string, csrDER []byte, cert *tls.Certificate, auth func(*http.Request)) (*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("est: %s: parse CSR: %w", op, err)
	}
	body := []byte(base64.StdEncoding.EncodeToString(csrDER))
	resp, err := c.do(ctx, op, http.MethodPost, body, cert, func(r *http.Request) {
		r.Header.Set("Content-Type", mimePKCS10)
		r.Header.Set("Content-Transfer-Encoding", "base64")
		r.Header.Set("Accept", mimePKCS7)
		if auth != nil {
			auth(r)
		}
	})
	if err != nil {
		return nil, err
	}
	certs, err := decodeCerts(resp)
	if err != nil {
		return nil, fmt.Errorf("est: %s at %s: response %w", op, c.URL, err)
	}
	leaf := matchKey(certs, csr.PublicKey)
	if leaf == nil {
		return nil, fmt.Errorf("est: %s at %s: the server returned %d certificate(s), none for the CSR's public key", op, c.URL, len(certs))
	}
	return leaf, nil
}

func matchKey(certs []*x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	k, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return nil
	}
	for _, c := range certs {
		if k.Equal(c.PublicKey) {
			return c
		}
	}
	return nil
}

// endpoint returns the URL of op and the server's base URL for messages.
func (c *Client) endpoint(op string) (string, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "", fmt.Errorf("est: server URL %q: %w", c.URL, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("est: server URL %q: want https://host[:port]", c.URL)
	}
	path := strings.TrimSuffix(u.Path, "/")
	if path == "" {
		path = PathPrefix
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = path+"/"+op, "", "", ""
	return u.String(), nil
}

// do sends one request and returns the body of a 200 answer with the
// expected media type; anything else becomes a readable error.
func (c *Client) do(ctx context.Context, op, method string, body []byte, cert *tls.Certificate, prep func(*http.Request)) ([]byte, error) {
	if c.Roots == nil {
		return nil, fmt.Errorf("est: %s: Client.Roots is nil; give the CA file that signs the EST server (the system roots are never used)", op)
	}
	u, err := c.endpoint(op)
	if err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    c.Roots,
		ServerName: c.ServerName,
	}
	if cert != nil {
		// Always present the certificate, even when the server's list of
		// acceptable CAs does not name its issuer: a refusal by the server
		// is a clearer error than a silent 401 for a missing certificate.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	hc := &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   tc,
			DisableKeepAlives: true,
			Proxy:             http.ProxyFromEnvironment,
		},
		// A redirect would send the Basic credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer hc.CloseIdleConnections()

	var rb io.Reader
	if body != nil {
		rb = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rb)
	if err != nil {
		return nil, fmt.Errorf("est: %s: %w", op, err)
	}
	prep(req)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("est: %s: %w", op, c.explain(parent, err, timeout, cert != nil))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, fmt.Errorf("est: %s: read response: %w", op, c.explain(parent, err, timeout, cert != nil))
	}
	if len(data) > maxResponseBody {
		return nil, fmt.Errorf("est: %s at %s: response larger than %d bytes", op, u, maxResponseBody)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{Op: op, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "" || strings.HasPrefix(mt, "text/") || strings.Contains(mt, "json") {
			e.Message = sanitize(data)
		}
		return nil, fmt.Errorf("est: %s at %s: %w", op, u, e)
	}
	ct := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != mimePKCS7 && mt != "application/x-pkcs7-mime") {
		return nil, fmt.Errorf("est: %s at %s: response Content-Type is %q, want %s (is this an EST server?)", op, u, ct, mimePKCS7)
	}
	return data, nil
}

// explain turns a transport error into what a person needs to fix it,
// keeping the cause wrapped. parent is the caller's context: its
// cancellation is passed through as is.
func (c *Client) explain(parent context.Context, err error, timeout time.Duration, withCert bool) error {
	// *url.Error only repeats the method and URL, which the message
	// already names.
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if ua, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return fmt.Errorf("the EST server at %s presents a certificate not signed by the CA file (issuer %q, subject %q): %w",
			c.URL, ua.Cert.Issuer.String(), ua.Cert.Subject.String(), err)
	}
	if he, ok := errors.AsType[x509.HostnameError](err); ok {
		names := he.Certificate.DNSNames
		for _, ip := range he.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
		if len(names) == 0 {
			names = []string{"no DNS or IP names (CN " + strconv.Quote(he.Certificate.Subject.CommonName) + " is not used)"}
		}
		return fmt.Errorf("the EST server at %s presents a certificate for %s, not for %q; fix the URL or set the server name: %w",
			c.URL, strings.Join(names, ", "), he.Host, err)
	}
	if ie, ok := errors.AsType[x509.CertificateInvalidError](err); ok && ie.Reason == x509.Expired {
		return fmt.Errorf("the EST server's certificate is valid from %s to %s but this device's clock says %s; check the clock (NTP) or the server: %w",
			ie.Cert.NotBefore.UTC().Format(time.RFC3339), ie.Cert.NotAfter.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339), err)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("connection refused: no EST server listening at %s: %w", c.URL, err)
	}
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok {
		return fmt.Errorf("cannot resolve %q: %w", dnsErr.Name, err)
	}
	if parent.Err() != nil {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return fmt.Errorf("timed out after %s waiting for the EST server at %s: %w", timeout, c.URL, err)
	}
	if withCert && strings.Contains(err.Error(), "remote error: tls:") {
		return fmt.Errorf("the EST server at %s refused the client certificate during the TLS handshake (is it issued by the fleet CA and still valid?): %w", c.URL, err)
	}
	return err
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t).Round(time.Second); d > 0 {
			return d
		}
	}
	return 0
}
