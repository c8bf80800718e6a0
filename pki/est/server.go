package est

import (
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Authority decides and signs. The handler does the protocol; an Authority
// holds the policy: which tokens are good, what a certificate contains.
type Authority interface {
	// CACerts returns the certificates a client should trust, the fleet
	// CA first.
	CACerts(ctx context.Context) ([]*x509.Certificate, error)
	// Enroll checks the one-time token of device id and issues a
	// certificate for csr, whose signature the handler has verified. It
	// should compare tokens in constant time and refuse a used one.
	Enroll(ctx context.Context, id, token string, csr *x509.CertificateRequest) (*x509.Certificate, error)
	// Reenroll issues a successor to current, a client certificate that
	// verified against the server's ClientCAs. RFC 7030 §4.2.2 wants the
	// CSR's subject to equal current's; an Authority that takes the
	// subject from current rather than from csr needs not check.
	Reenroll(ctx context.Context, current *x509.Certificate, csr *x509.CertificateRequest) (*x509.Certificate, error)
}

// ServerOptions tunes NewHandler. The zero value is usable.
type ServerOptions struct {
	// Logger receives one line per refusal and per issued certificate;
	// nil discards.
	Logger *slog.Logger
	// Now is the clock of the failure limiter; nil means time.Now.
	Now func() time.Time
	// MaxFailures refusals (400, 401, 403, 413, 415) from one address
	// within Window make the handler answer 429 until the window ends.
	// Zero means 5; negative disables the limiter.
	MaxFailures int
	// Window is the failure counting period; zero means one minute.
	Window time.Duration
	// MaxTracked bounds the addresses the limiter remembers, the oldest
	// forgotten first; zero means 4096.
	MaxTracked int
}

// ServerTLSConfig is the TLS configuration an EST server needs: TLS 1.2 or
// later, and a client certificate verified against clientCAs when one is
// given, which is what /simplereenroll authenticates with. A nil clientCAs
// accepts no client certificate (rather than the system roots).
func ServerTLSConfig(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	c := ServerTLSConfigFunc(nil, clientCAs)
	c.Certificates = []tls.Certificate{cert}
	return c
}

// ServerTLSConfigFunc is ServerTLSConfig with the server certificate taken
// from get at each handshake (a certificate that is reissued while the
// server runs).
func ServerTLSConfigFunc(get func(*tls.ClientHelloInfo) (*tls.Certificate, error), clientCAs *x509.CertPool) *tls.Config {
	if clientCAs == nil {
		clientCAs = x509.NewCertPool()
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: get,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      clientCAs,
	}
}

// NewHandler serves the EST endpoints under PathPrefix with a. Mount it at
// the root of the server (or at PathPrefix+"/") behind ServerTLSConfig.
func NewHandler(a Authority, o ServerOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxFailures == 0 {
		o.MaxFailures = 5
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = 4096
	}
	return &handler{
		a:   a,
		log: o.Logger,
		lim: newLimiter(o.MaxFailures, o.Window, o.MaxTracked, o.Now),
	}
}

type handler struct {
	a   Authority
	log *slog.Logger
	lim *limiter // nil when disabled
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.URL.Path, PathPrefix+"/")
	if !ok || (op != opCACerts && op != opEnroll && op != opReenroll) {
		http.NotFound(w, r)
		return
	}
	method := http.MethodPost
	if op == opCACerts {
		method = http.MethodGet
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		h.text(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s takes %s", op, method))
		return
	}
	key := clientKey(r.RemoteAddr)
	if wait, blocked := h.lim.blocked(key); blocked {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		h.log.Warn("est: refused", "op", op, "id", claimedID(r), "remote", r.RemoteAddr,
			"status", http.StatusTooManyRequests, "reason", "too many failures", "retry_after_s", secs)
		h.text(w, http.StatusTooManyRequests, fmt.Sprintf("%d refused requests within %s", h.lim.max, h.lim.window))
		return
	}
	switch op {
	case opCACerts:
		h.cacerts(w, r)
	case opEnroll:
		h.enroll(w, r, key)
	case opReenroll:
		h.reenroll(w, r, key)
	}
}

func (h *handler) cacerts(w http.ResponseWriter, r *http.Request) {
	certs, err := h.a.CACerts(r.Context())
	if err == nil && len(certs) == 0 {
		err = errors.New("authority returned no CA certificates")
	}
	if err != nil {
		h.fail(w, r, "", opCACerts, "", err)
		return
	}
	h.certs(w, r, mimePKCS7, certs)
}

func (h *handler) enroll(w http.ResponseWriter, r *http.Request, key string) {
	id, token, ok := r.BasicAuth()
	if !ok || id == "" || token == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="est", charset="UTF-8"`)
		h.fail(w, r, key, opEnroll, id, fmt.Errorf("%w: simpleenroll needs HTTP Basic credentials: the device id as user, the enrollment token as password", ErrUnauthorized))
		return
	}
	csr, ok := h.readCSR(w, r, key, opEnroll, id)
	if !ok {
		return
	}
	cert, err := h.a.Enroll(r.Context(), id, token, csr)
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			w.Header().Set("WWW-Authenticate", `Basic realm="est", charset="UTF-8"`)
		}
		h.fail(w, r, key, opEnroll, id, err)
		return
	}
	h.issued(w, r, opEnroll, id, cert)
}

func (h *handler) reenroll(w http.ResponseWriter, r *http.Request, key string) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		h.fail(w, r, key, opReenroll, "", fmt.Errorf("%w: simplereenroll needs a TLS client certificate issued by the fleet CA", ErrUnauthorized))
		return
	}
	current := r.TLS.VerifiedChains[0][0]
	id := current.Subject.CommonName
	csr, ok := h.readCSR(w, r, key, opReenroll, id)
	if !ok {
		return
	}
	cert, err := h.a.Reenroll(r.Context(), current, csr)
	if err != nil {
		h.fail(w, r, key, opReenroll, id, err)
		return
	}
	h.issued(w, r, opReenroll, id, cert)
}

// readCSR checks the request's type and reads and decodes its body,
// answering the client itself when that fails.
func (h *handler) readCSR(w http.ResponseWriter, r *http.Request, key, op, id string) (*x509.CertificateRequest, bool) {
	// Content-Transfer-Encoding is not checked: RFC 8951 §3 says to
	// ignore it and always expect base64.
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != mimePKCS10 {
		h.failStatus(w, r, key, op, id, http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type must be %s, got %q", mimePKCS10, ct), nil)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			h.failStatus(w, r, key, op, id, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body larger than %d bytes", MaxRequestBody), nil)
			return nil, false
		}
		h.failStatus(w, r, key, op, id, http.StatusBadRequest, "could not read the request body", err)
		return nil, false
	}
	csr, err := decodeCSR(body)
	if err != nil {
		h.failStatus(w, r, key, op, id, http.StatusBadRequest, "request body: "+err.Error(), nil)
		return nil, false
	}
	return csr, true
}

func (h *handler) issued(w http.ResponseWriter, r *http.Request, op, id string, cert *x509.Certificate) {
	if cert == nil {
		h.fail(w, r, "", op, id, errors.New("authority returned no certificate"))
		return
	}
	h.log.Info("est: issued", "op", op, "id", id, "remote", r.RemoteAddr,
		"serial", cert.SerialNumber.Text(16), "not_after", cert.NotAfter)
	h.certs(w, r, mimePKCS7CertOnly, []*x509.Certificate{cert})
}

func (h *handler) certs(w http.ResponseWriter, r *http.Request, contentType string, certs []*x509.Certificate) {
	body, err := encodeCerts(certs)
	if err != nil {
		h.fail(w, r, "", "", "", fmt.Errorf("encode PKCS#7: %w", err))
		return
	}
	w.Header().Set("Content-Type", contentType)
	// Not needed by RFC 8951 readers, but RFC 7030 clients (globalsign/est
	// among them) insist on it.
	w.Header().Set("Content-Transfer-Encoding", "base64")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// fail answers an Authority's (or the handler's own) error: a wrapped
// sentinel picks 401/403/400 and its text goes to the client; anything else
// is a 500 whose detail stays in the log.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, key, op, id string, err error) {
	for _, s := range []struct {
		sentinel error
		status   int
	}{{ErrUnauthorized, http.StatusUnauthorized}, {ErrForbidden, http.StatusForbidden}, {ErrBadRequest, http.StatusBadRequest}} {
		if errors.Is(err, s.sentinel) {
			// "unauthorized: unknown token" reads as "unknown token"
			// once the client has said "token refused".
			msg := strings.TrimPrefix(err.Error(), s.sentinel.Error()+": ")
			h.failStatus(w, r, key, op, id, s.status, msg, nil)
			return
		}
	}
	h.log.Error("est: internal error", "op", op, "id", id, "remote", r.RemoteAddr, "err", err)
	h.text(w, http.StatusInternalServerError, "internal error; the EST server's log has the detail")
}

// failStatus refuses a request: it logs, counts the failure against the
// client's address, and answers msg. cause, when set, is logged only.
func (h *handler) failStatus(w http.ResponseWriter, r *http.Request, key, op, id string, status int, msg string, cause error) {
	attrs := []any{"op", op, "id", id, "remote", r.RemoteAddr, "status", status, "reason", msg}
	if cause != nil {
		attrs = append(attrs, "err", cause)
	}
	h.log.Warn("est: refused", attrs...)
	if key != "" {
		h.lim.fail(key)
	}
	h.text(w, status, msg)
}

func (h *handler) text(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", mimeText)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

// claimedID is who the request says it is, for logs: the Basic user name
// or the verified client certificate's CN.
func claimedID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		return id
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return r.TLS.VerifiedChains[0][0].Subject.CommonName
	}
	return ""
}

// clientKey is the address the limiter counts failures against: the IP
// without port, and for IPv6 its /64, which one host can rotate within.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// limiter counts failures per address in fixed windows that start at an
// address's first failure. Memory is bounded: past max addresses, the one
// whose window started earliest is forgotten.
type limiter struct {
	max    int
	window time.Duration
	cap    int
	now    func() time.Time

	mu    sync.Mutex
	addrs map[string]*list.Element // of *failures
	order *list.List               // oldest window start first
}

type failures struct {
	key   string
	start time.Time
	n     int
}

func newLimiter(max int, window time.Duration, capacity int, now func() time.Time) *limiter {
	if max < 0 {
		return nil
	}
	return &limiter{max: max, window: window, cap: capacity, now: now,
		addrs: make(map[string]*list.Element), order: list.New()}
}

// blocked reports whether key has used up its failures, and for how long
// it stays blocked.
func (l *limiter) blocked(key string) (time.Duration, bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.addrs[key]
	if !ok {
		return 0, false
	}
	f := e.Value.(*failures)
	left := f.start.Add(l.window).Sub(l.now())
	if left <= 0 {
		l.order.Remove(e)
		delete(l.addrs, key)
		return 0, false
	}
	return left, f.n >= l.max
}

func (l *limiter) fail(key string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if e, ok := l.addrs[key]; ok {
		f := e.Value.(*failures)
		if now.Sub(f.start) < l.window {
			f.n++
			return
		}
		f.start, f.n = now, 1
		l.order.MoveToBack(e)
		return
	}
	for l.order.Len() >= l.cap {
		oldest := l.order.Front()
		delete(l.addrs, oldest.Value.(*failures).key)
		l.order.Remove(oldest)
	}
	l.addrs[key] = l.order.PushBack(&failures{key: key, start: now, n: 1})
}

func (l *limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs)
}
