package est

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/pki"
)

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, map[string]string{"dev-1": "s3cret-token-1"})
	ctx := t.Context()

	cas, err := f.client.CACerts(ctx)
	if err != nil {
		t.Fatalf("CACerts: %v", err)
	}
	if len(cas) != 1 || !cas[0].Equal(f.auth.ca.Cert) {
		t.Fatalf("CACerts = %d certs, want the fleet CA", len(cas))
	}

	key, csr := newCSR(t, "dev-1")
	cert, err := f.client.Enroll(ctx, "dev-1", "s3cret-token-1", csr)
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	if cert.Subject.CommonName != "dev-1" {
		t.Errorf("enrolled CN = %q, want dev-1", cert.Subject.CommonName)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: f.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("enrolled cert does not verify against the fleet CA: %v", err)
	}

	// Renew with a fresh key, authenticated by the first certificate.
	key2, csr2 := newCSR(t, "dev-1")
	cert2, err := f.client.Reenroll(ctx, tlsCertOf(t, cert, key), csr2)
	if err != nil {
		t.Fatalf("Reenroll: %v", err)
	}
	if cert2.Subject.CommonName != "dev-1" || matchKey([]*x509.Certificate{cert2}, key2.Public()) == nil {
		t.Errorf("reenrolled cert: CN %q, want dev-1 with the new key", cert2.Subject.CommonName)
	}

	// The token was one-time.
	_, csr3 := newCSR(t, "dev-1")
	if _, err := f.client.Enroll(ctx, "dev-1", "s3cret-token-1", csr3); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("second Enroll with the same token: err = %v, want ErrUnauthorized", err)
	}
}

func TestEnrollRefused(t *testing.T) {
	f := newFixture(t, map[string]string{"dev-1": "right-token", "dev-2": "token-2"})
	tests := []struct {
		name, id, token, cn string
		want                error
		wantMsg             string
	}{
		{"wrong token", "dev-1", "wrong-token", "dev-1", ErrUnauthorized, "token refused by the server: unknown device or wrong token"},
		{"unknown device", "dev-9", "right-token", "dev-9", ErrUnauthorized, "token refused by the server"},
		{"CSR for another device", "dev-2", "token-2", "dev-1", ErrForbidden, `request forbidden by the server: the CSR names "dev-1", not the device id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, csr := newCSR(t, tt.cn)
			_, err := f.client.Enroll(t.Context(), tt.id, tt.token, csr)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), tt.token) {
				t.Errorf("err %q echoes the token", err)
			}
		})
	}

	t.Run("no credentials", func(t *testing.T) {
		_, csr := newCSR(t, "dev-1")
		resp := post(t, f, "/simpleenroll", mimePKCS10, base64.StdEncoding.EncodeToString(csr), nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", resp.StatusCode)
		}
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
			t.Errorf("WWW-Authenticate = %q, want a Basic challenge", got)
		}
	})
	t.Run("client refuses empty token", func(t *testing.T) {
		_, csr := newCSR(t, "dev-1")
		if _, err := f.client.Enroll(t.Context(), "dev-1", "", csr); err == nil {
			t.Fatal("Enroll with empty token succeeded")
		}
	})
}

func TestReenrollAuth(t *testing.T) {
	f := newFixture(t, nil)
	_, csr := newCSR(t, "dev-1")

	t.Run("no client certificate", func(t *testing.T) {
		resp := post(t, f, "/simplereenroll", mimePKCS10, base64.StdEncoding.EncodeToString(csr), nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", resp.StatusCode)
		}
	})

	t.Run("certificate from another CA", func(t *testing.T) {
		other, err := pki.NewCA("Other CA", 0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := other.Issue(pki.Template{CN: "dev-1", Client: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.client.Reenroll(t.Context(), tlsPair(t, p), csr)
		if err == nil {
			t.Fatal("Reenroll with a foreign certificate succeeded")
		}
		if !strings.Contains(err.Error(), "refused the client certificate") {
			t.Errorf("err = %q, want it to say the client certificate was refused", err)
		}
	})
}

func TestRogueServer(t *testing.T) {
	fleet, err := pki.NewCA("Fleet CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := pki.NewCA("Rogue CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(newFakeAuthority(t, nil), ServerOptions{})
	issue := func(ca *pki.CA, tmpl pki.Template) tls.Certificate {
		p, err := ca.Issue(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		return tlsPair(t, p)
	}
	localhost := []net.IP{net.IPv4(127, 0, 0, 1)}
	past := time.Now().Add(-48 * time.Hour)
	tests := []struct {
		name       string
		cert       tls.Certificate
		serverName string
		want       []string
		wantErr    any
	}{
		{"signed by another CA", issue(rogue, pki.Template{CN: "est.test", IPs: localhost, Server: true}), "",
			[]string{"presents a certificate not signed by the CA file", `issuer "CN=Rogue CA"`}, &x509.UnknownAuthorityError{}},
		{"wrong name", issue(fleet, pki.Template{CN: "broker", DNSNames: []string{"broker.test", "mqtt.test"}, Server: true}), "",
			[]string{"presents a certificate for broker.test, mqtt.test", `not for "127.0.0.1"`}, &x509.HostnameError{}},
		{"wrong ServerName", issue(fleet, pki.Template{CN: "est", DNSNames: []string{"est.test"}, IPs: localhost, Server: true}), "est.example",
			[]string{"presents a certificate for est.test, 127.0.0.1", `not for "est.example"`}, &x509.HostnameError{}},
		{"expired", issue(fleet, pki.Template{CN: "est", IPs: localhost, Server: true, NotBefore: past, NotAfter: past.Add(time.Hour)}), "",
			[]string{"check the clock"}, &x509.CertificateInvalidError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startTLS(t, h, tt.cert, nil)
			c := &Client{URL: srv.URL, Roots: poolOf(fleet.Cert), ServerName: tt.serverName}
			_, err := c.CACerts(t.Context())
			if err == nil {
				t.Fatal("CACerts succeeded against a server the roots do not vouch for")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q\nwant it to contain %q", err, w)
				}
			}
			switch tt.wantErr.(type) {
			case *x509.UnknownAuthorityError:
				_, ok := errors.AsType[x509.UnknownAuthorityError](err)
				assertWrapped(t, ok, err)
			case *x509.HostnameError:
				_, ok := errors.AsType[x509.HostnameError](err)
				assertWrapped(t, ok, err)
			case *x509.CertificateInvalidError:
				_, ok := errors.AsType[x509.CertificateInvalidError](err)
				assertWrapped(t, ok, err)
			}
		})
	}
}

func assertWrapped(t *testing.T, ok bool, err error) {
	t.Helper()
	if !ok {
		t.Errorf("err %q does not wrap the x509 cause", err)
	}
}

func TestClientTransportErrors(t *testing.T) {
	roots := poolOf(newFakeAuthority(t, nil).ca.Cert)

	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := &Client{URL: "https://" + addr, Roots: roots}
		_, err = c.CACerts(t.Context())
		if err == nil || !strings.Contains(err.Error(), "connection refused: no EST server listening at https://"+addr) {
			t.Fatalf("err = %v, want connection refused naming the URL", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		// A listener that accepts and never speaks TLS.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				go func() { <-done; conn.Close() }()
			}
		}()
		c := &Client{URL: "https://" + l.Addr().String(), Roots: roots, Timeout: 100 * time.Millisecond}
		_, err = c.CACerts(t.Context())
		if err == nil || !strings.Contains(err.Error(), "timed out after 100ms") {
			t.Fatalf("err = %v, want a timeout naming the duration", err)
		}
	})

	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		c := &Client{URL: "https://127.0.0.1:1", Roots: roots}
		if _, err := c.CACerts(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestClientConfig(t *testing.T) {
	tests := []struct {
		name string
		c    Client
		want string
	}{
		{"nil roots", Client{URL: "https://127.0.0.1:1"}, "Client.Roots is nil"},
		{"plain http", Client{URL: "http://127.0.0.1:1", Roots: x509.NewCertPool()}, "want https://host[:port]"},
		{"no host", Client{URL: "est.example", Roots: x509.NewCertPool()}, "want https://host[:port]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.CACerts(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}

	t.Run("endpoints", func(t *testing.T) {
		for url, want := range map[string]string{
			"https://h:8443":                         "https://h:8443/.well-known/est/cacerts",
			"https://h:8443/":                        "https://h:8443/.well-known/est/cacerts",
			"https://h/.well-known/est/fleet-a":      "https://h/.well-known/est/fleet-a/cacerts",
			"https://h/.well-known/est/fleet-a/?x=1": "https://h/.well-known/est/fleet-a/cacerts",
		} {
			got, err := (&Client{URL: url}).endpoint(opCACerts)
			if err != nil || got != want {
				t.Errorf("endpoint(%q) = %q, %v; want %q", url, got, err, want)
			}
		}
	})
}

// TestClientChecksResponse runs the client against servers that answer 200
// with something other than what was asked for.
func TestClientChecksResponse(t *testing.T) {
	a := newFakeAuthority(t, nil)
	_, csr := newCSR(t, "dev-1")
	other, _ := newCSR(t, "dev-1")
	stranger, err := a.sign("dev-1", other.Public())
	if err != nil {
		t.Fatal(err)
	}
	strangerBody, err := encodeCerts([]*x509.Certificate{stranger, a.ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ctype, body, want string
	}{
		{"html", "text/html", "<html>login</html>", `Content-Type is "text/html"`},
		{"not base64", mimePKCS7, "!!!", "response not base64"},
		{"not PKCS#7", mimePKCS7, base64.StdEncoding.EncodeToString([]byte("hello")), "response not a PKCS#7 structure"},
		{"no cert for the key", mimePKCS7CertOnly, string(strangerBody), "none for the CSR's public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.Write([]byte(tt.body))
			}), serverCert(t, a.ca), nil)
			c := &Client{URL: srv.URL, Roots: poolOf(a.ca.Cert)}
			_, err := c.Enroll(t.Context(), "dev-1", "tok", csr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestServerRefusals(t *testing.T) {
	a := newFakeAuthority(t, map[string]string{"dev-1": "tok"})
	h := NewHandler(a, ServerOptions{MaxFailures: -1})
	_, csr := newCSR(t, "dev-1")
	b64 := base64.StdEncoding.EncodeToString(csr)
	var wrapped strings.Builder
	for s := b64; len(s) > 0; {
		n := min(len(s), 76)
		wrapped.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	badSig := bytes.Clone(csr)
	badSig[len(badSig)-3] ^= 0xff
	tests := []struct {
		name, method, path, ctype, body string
		want                            int
		wantBody                        string
	}{
		{"cacerts", "GET", "/cacerts", "", "", 200, ""},
		{"line-wrapped base64", "POST", "/simpleenroll", mimePKCS10, wrapped.String(), 200, ""},
		{"unknown endpoint", "GET", "/csrattrs", "", "", 404, ""},
		{"cacerts by POST", "POST", "/cacerts", "", "", 405, "cacerts takes GET"},
		{"enroll by GET", "GET", "/simpleenroll", "", "", 405, "simpleenroll takes POST"},
		{"wrong content type", "POST", "/simpleenroll", "application/json", b64, 415, "Content-Type must be application/pkcs10"},
		{"oversize", "POST", "/simpleenroll", mimePKCS10, strings.Repeat("A", MaxRequestBody+1), 413, "larger than 65536 bytes"},
		{"bad base64", "POST", "/simpleenroll", mimePKCS10, "MII*", 400, "request body: not base64"},
		{"not a CSR", "POST", "/simpleenroll", mimePKCS10, base64.StdEncoding.EncodeToString([]byte("hello")), 400, "not a DER PKCS#10"},
		{"bad signature", "POST", "/simpleenroll", mimePKCS10, base64.StdEncoding.EncodeToString(badSig), 400, ""},
		{"empty body", "POST", "/simpleenroll", mimePKCS10, "", 400, "empty body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://est.test"+PathPrefix+tt.path, strings.NewReader(tt.body))
			r.SetBasicAuth("dev-1", "tok")
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status = %d (%s), want %d", w.Code, strings.TrimSpace(w.Body.String()), tt.want)
			}
			if tt.want == 200 {
				if _, err := decodeCerts(w.Body.Bytes()); err != nil {
					t.Errorf("200 body does not decode: %v", err)
				}
				if got := w.Header().Get("Content-Transfer-Encoding"); got != "base64" {
					t.Errorf("Content-Transfer-Encoding = %q, want base64", got)
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); tt.want != 404 && ct != mimeText {
				t.Errorf("Content-Type = %q, want %q", ct, mimeText)
			}
			if !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", w.Body.String(), tt.wantBody)
			}
		})
	}
}

func TestInternalErrorIsGeneric(t *testing.T) {
	logs := &syncBuffer{}
	h := NewHandler(failingAuthority{}, ServerOptions{Logger: newJSONLogger(logs)})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", PathPrefix+"/cacerts", nil))
	if w.Code != 500 || strings.Contains(w.Body.String(), "disk on fire") {
		t.Errorf("got %d %q, want 500 without the detail", w.Code, w.Body.String())
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Errorf("log %q lacks the detail", logs.String())
	}
}

type failingAuthority struct{ Authority }

func (failingAuthority) CACerts(context.Context) ([]*x509.Certificate, error) {
	return nil, errors.New("disk on fire")
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, map[string]string{"dev-1": "right-token"})
	ctx := t.Context()
	_, csr := newCSR(t, "dev-1")

	for i := range 5 {
		if _, err := f.client.Enroll(ctx, "dev-1", "guess-"+strconv.Itoa(i), csr); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("attempt %d: err = %v, want ErrUnauthorized", i, err)
		}
		f.clock.Advance(time.Second)
	}
	// Blocked now, even with the right token and for cacerts.
	_, err := f.client.Enroll(ctx, "dev-1", "right-token", csr)
	estErr, ok := errors.AsType[*Error](err)
	if !ok || estErr.Status != http.StatusTooManyRequests {
		t.Fatalf("6th attempt: err = %v, want a 429 *Error", err)
	}
	if estErr.RetryAfter != 55*time.Second {
		t.Errorf("RetryAfter = %v, want 55s (the window opened 5 s ago)", estErr.RetryAfter)
	}
	if !strings.Contains(err.Error(), "too many failed attempts") || !strings.Contains(err.Error(), "5 refused requests within 1m0s (retry after 55s)") {
		t.Errorf("err = %q, want it to say too many attempts and when to retry", err)
	}

	f.clock.Advance(55 * time.Second)
	if _, err := f.client.Enroll(ctx, "dev-1", "right-token", csr); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestRateLimitPerAddress(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	a := newFakeAuthority(t, map[string]string{"dev-2": "tok-2"})
	h := NewHandler(a, ServerOptions{Now: clock.Now, MaxFailures: 3, Window: 10 * time.Second})
	enroll := func(remote, token string) int {
		_, csr := newCSR(t, "dev-2")
		r := httptest.NewRequest("POST", PathPrefix+"/simpleenroll", strings.NewReader(base64.StdEncoding.EncodeToString(csr)))
		r.RemoteAddr = remote
		r.Header.Set("Content-Type", mimePKCS10)
		r.SetBasicAuth("dev-2", token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	const attacker, device, v6a, v6b = "192.0.2.1:4000", "192.0.2.2:4000", "[2001:db8::1]:1", "[2001:db8::2]:1"
	for range 3 {
		enroll(attacker, "guess")
		enroll(v6a, "guess")
	}
	for _, c := range []struct {
		remote string
		want   int
	}{
		{attacker, 429},
		{attacker + "1", 429}, // another port, same address
		{v6b, 429},            // same /64
		{device, 200},         // a success elsewhere…
		{attacker, 429},       // …does not unblock the attacker
	} {
		if got := enroll(c.remote, "tok-2"); got != c.want {
			t.Errorf("enroll from %s = %d, want %d", c.remote, got, c.want)
		}
	}
}

func TestLimiterBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLimiter(1, time.Minute, 4096, clock.Now)
	for i := range 5000 {
		l.fail(net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String())
	}
	if n := l.tracked(); n != 4096 {
		t.Errorf("tracked = %d, want 4096", n)
	}
	if _, blocked := l.blocked("10.0.0.0"); blocked {
		t.Error("the oldest address is still tracked")
	}
	if _, blocked := l.blocked("10.0.19.135"); !blocked { // i = 4999
		t.Error("the newest address is not tracked")
	}
}

func TestTokenNeverLogged(t *testing.T) {
	const secret = "tok-3b9f2c1e-never-log-me"
	f := newFixture(t, map[string]string{"dev-1": secret})
	ctx := t.Context()
	_, csr := newCSR(t, "dev-1")
	_, wrong := newCSR(t, "dev-0")
	var errs []error
	_, err := f.client.Enroll(ctx, "dev-1", secret+"x", csr) // wrong token
	errs = append(errs, err)
	_, err = f.client.Enroll(ctx, "dev-1", secret, wrong) // forbidden CSR
	errs = append(errs, err)
	_, err = f.client.Enroll(ctx, "dev-1", secret, csr) // success
	errs = append(errs, err)
	_, err = f.client.Enroll(ctx, "dev-1", secret, csr) // reused
	errs = append(errs, err)
	resp := post(t, f, "/simpleenroll", "text/plain", "x", func(r *http.Request) { r.SetBasicAuth("dev-1", secret) })
	resp.Body.Close()
	for range 3 {
		_, err = f.client.Enroll(ctx, "dev-1", secret, csr) // until 429
		errs = append(errs, err)
	}

	logs := f.logs.String()
	if !strings.Contains(logs, `"id":"dev-1"`) || !strings.Contains(logs, `"remote":"127.0.0.1:`) {
		t.Errorf("logs lack the id and remote address:\n%s", logs)
	}
	if !strings.Contains(logs, `"status":429`) {
		t.Errorf("logs lack the 429 refusal:\n%s", logs)
	}
	if strings.Contains(logs, secret) || strings.Contains(logs, base64.StdEncoding.EncodeToString([]byte("dev-1:"+secret))) {
		t.Errorf("the token appears in the logs:\n%s", logs)
	}
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("client error echoes the token: %v", err)
		}
	}
}

func TestErrorSentence(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Op: opEnroll, Status: 401, Message: "bad token"}, "token refused by the server: bad token"},
		{Error{Op: opReenroll, Status: 401}, "client certificate refused by the server: no explanation given"},
		{Error{Op: opEnroll, Status: 429, Message: "slow down", RetryAfter: time.Minute}, "too many failed attempts from this address: slow down (retry after 1m0s)"},
		{Error{Op: opEnroll, Status: 202, RetryAfter: 10 * time.Minute}, "enrollment is pending approval at the server: no explanation given (retry after 10m0s)"},
		{Error{Op: opCACerts, Status: 503, Message: "maintenance"}, "server answered 503 Service Unavailable: maintenance"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q\nwant      %q", got, tt.want)
		}
	}
	if got := sanitize([]byte("line one\r\n\x1b[31mred\x00\n")); got != "line one [31mred" {
		t.Errorf("sanitize = %q", got)
	}
}

// post sends a raw request to f's server, trusting its CA but presenting
// no client certificate.
func post(t *testing.T, f *fixture, path, ctype, body string, prep func(*http.Request)) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", f.srv.URL+PathPrefix+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if prep != nil {
		prep(req)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots}, DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
