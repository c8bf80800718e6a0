package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/testlog"
	"github.com/edgeagent/agent/pki"
	"github.com/edgeagent/agent/sensors/clocktest"
	"github.com/edgeagent/agent/tlsclient"
)

// caEnroller is an Enroller backed by a real CA directory in-process, with
// failures injected by the test. (The EST transport is tested in pki/est
// and end to end in cmd/agent and agent.)
type caEnroller struct {
	dir   *pki.Dir
	token string
	now   func() time.Time

	mu    sync.Mutex
	fail  int // fail this many calls first
	calls chan struct{}
	// forge, when set, replaces the issued certificate.
	forge func(csr *x509.CertificateRequest) *x509.Certificate
}

func (e *caEnroller) call() error {
	if e.calls != nil {
		defer func() { e.calls <- struct{}{} }()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail > 0 {
		e.fail--
		return errors.New("est: simplereenroll: connection refused: no EST server listening")
	}
	return nil
}

func (e *caEnroller) Enroll(_ context.Context, id, token string, der []byte) (*x509.Certificate, error) {
	if err := e.call(); err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	if e.forge != nil {
		return e.forge(csr), nil
	}
	return e.dir.Enroll(id, token, csr, 90, e.now())
}

func (e *caEnroller) Reenroll(_ context.Context, cur tls.Certificate, der []byte) (*x509.Certificate, error) {
	if err := e.call(); err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	return e.dir.Reenroll(cur.Leaf, csr, 90, e.now())
}

func newCA(t *testing.T) (*pki.Dir, []byte) {
	t.Helper()
	d, err := pki.InitDir(filepath.Join(t.TempDir(), "ca"), pki.InitOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return d, d.CA.CertPEM
}

func TestEnroll(t *testing.T) {
	ca, caPEM := newCA(t)
	tok, err := ca.NewToken("dev1", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e := &caEnroller{dir: ca, now: time.Now}
	out := filepath.Join(t.TempDir(), "tls")
	req := Request{ID: "dev1", Token: tok, CAPEM: caPEM, Dir: out}
	cert, err := Enroll(context.Background(), e, req)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := tlsclient.Load(DirFiles(out), time.Now())
	if err != nil {
		t.Fatalf("enrolled files do not load: %v", err)
	}
	if !creds.Cert.Leaf.Equal(cert) || cert.Subject.CommonName != "dev1" {
		t.Errorf("loaded %v, enrolled %v", creds.Cert.Leaf.Subject, cert.Subject)
	}

	// Enrolling again without Overwrite changes nothing.
	before, _ := os.ReadFile(filepath.Join(out, KeyFile))
	tok2, _ := ca.NewToken("dev1", time.Hour, time.Now())
	req.Token = tok2
	if _, err := Enroll(context.Background(), e, req); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("second enroll: %v; want ErrExists naming --overwrite", err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, KeyFile)); !bytes.Equal(before, after) {
		t.Error("key replaced without Overwrite")
	}
	req.Overwrite = true
	if _, err := Enroll(context.Background(), e, req); err != nil {
		t.Errorf("enroll with Overwrite: %v", err)
	}
}

// TestEnrollLeavesNothing: every refusal, whether from the server or from
// the checks of what it returned, leaves the directory empty.
func TestEnrollLeavesNothing(t *testing.T) {
	ca, caPEM := newCA(t)
	other, _ := newCA(t)
	for _, c := range []struct {
		name  string
		e     *caEnroller
		ca    []byte
		token string
		want  string
	}{
		{"server refuses", &caEnroller{dir: ca, now: time.Now}, caPEM, "dev1.bad", "token"},
		{"unreachable", &caEnroller{dir: ca, now: time.Now, fail: 1}, caPEM, "x", "connection refused"},
		{"issued by another CA", &caEnroller{dir: other, now: time.Now}, caPEM, "", "does not verify"},
		{"CA file not a CA", &caEnroller{dir: ca, now: time.Now}, append([]byte(nil), leafPEM(t, ca)...), "", "not a CA certificate"},
		{"cert for another key", &caEnroller{dir: ca, now: time.Now, forge: func(*x509.CertificateRequest) *x509.Certificate { return leaf(t, ca, "dev1") }}, caPEM, "", "another key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := c.token
			if tok == "" {
				var err error
				if tok, err = c.e.dir.NewToken("dev1", time.Hour, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			out := t.TempDir()
			_, err := Enroll(context.Background(), c.e, Request{ID: "dev1", Token: tok, CAPEM: c.ca, Dir: out})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v; want one naming %q", err, c.want)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("left %d files behind", len(ents))
			}
			if err != nil && strings.Contains(err.Error(), tok) && len(tok) > 10 {
				t.Error("the error shows the token")
			}
		})
	}
}

func leaf(t *testing.T, ca *pki.Dir, cn string) *x509.Certificate {
	t.Helper()
	p, err := ca.Issue(pki.IssueOptions{CN: cn}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p.Cert
}

func leafPEM(t *testing.T, ca *pki.Dir) []byte {
	p, err := ca.Issue(pki.IssueOptions{CN: "notca"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p.CertPEM
}

func TestDue(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(90 * 24 * time.Hour)}
	if got, want := Due(c, 0), nb.Add(60*24*time.Hour); !got.Equal(want) {
		t.Errorf("Due(r=0) = %v, want %v (two thirds)", got, want)
	}
	if got, want := Due(c, 0.999999), nb.Add(55*24*time.Hour+12*time.Hour); got.Sub(want).Abs() > time.Minute {
		t.Errorf("Due(r→1) = %v, want %v (two thirds less a twentieth)", got, want)
	}
}

// syncBuf is a log sink read while the renewer writes.
type syncBuf = testlog.Buffer

// enrolled makes a device credentials directory with a 90-day certificate.
func enrolled(t *testing.T, ca *pki.Dir, caPEM []byte) *tlsclient.Credentials {
	t.Helper()
	tok, _ := ca.NewToken("dev1", time.Hour, time.Now())
	out := t.TempDir()
	if _, err := Enroll(context.Background(), &caEnroller{dir: ca, now: time.Now}, Request{ID: "dev1", Token: tok, CAPEM: caPEM, Dir: out}); err != nil {
		t.Fatal(err)
	}
	creds, err := tlsclient.Load(DirFiles(out), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// waitArmed waits (bounded) until the code under test has armed a timer.
func waitArmed(t *testing.T, c *clocktest.Clock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Timers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the renewer armed no timer within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRenewerRetriesThenSwaps(t *testing.T) {
	ca, caPEM := newCA(t)
	creds := enrolled(t, ca, caPEM)
	holder := tlsclient.NewHolder(creds)
	clock := clocktest.New(time.Now())
	e := &caEnroller{dir: ca, now: time.Now, fail: 2, calls: make(chan struct{}, 8)}
	logs := &syncBuf{}
	renewed := make(chan *tlsclient.Credentials, 1)
	rn := &Renewer{Holder: holder, Client: e, Clock: clock, Rand: func() float64 { return 0 },
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		Renewed: func(c *tlsclient.Credentials) { renewed <- c }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	waitArmed(t, clock)
	start := clock.Now()
	for i, wait := range []time.Duration{0, MinRetry, 2 * MinRetry} {
		if i == 0 {
			clock.Advance(Due(creds.Cert.Leaf, 0).Sub(start))
		} else {
			waitArmed(t, clock)
			clock.Advance(wait)
		}
		select {
		case <-e.calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("attempt %d not made", i+1)
		}
	}
	var next *tlsclient.Credentials
	select {
	case next = <-renewed:
	case <-time.After(5 * time.Second):
		t.Fatalf("no renewal after the third attempt; log:\n%s", logs.String())
	}
	if got := strings.Count(logs.String(), "certificate renewal failed"); got != 2 {
		t.Errorf("%d failures logged, want 2:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "days_left=") {
		t.Errorf("failure log lacks the days left:\n%s", logs.String())
	}
	if holder.Current() != next || next.Cert.Leaf.SerialNumber.Cmp(creds.Cert.Leaf.SerialNumber) == 0 {
		t.Fatal("the holder does not present the renewed certificate")
	}
	if next.Cert.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(creds.Cert.Leaf.PublicKey) {
		t.Error("renewal kept the old key")
	}
	fromDisk, err := tlsclient.Load(creds.Files, time.Now())
	if err != nil || !fromDisk.Cert.Leaf.Equal(next.Cert.Leaf) {
		t.Errorf("files on disk: %v; want the renewed pair", err)
	}
}

func TestRenewerExpired(t *testing.T) {
	ca, caPEM := newCA(t)
	creds := enrolled(t, ca, caPEM)
	clock := clocktest.New(creds.Cert.Leaf.NotAfter.Add(time.Hour))
	e := &caEnroller{dir: ca, now: time.Now, calls: make(chan struct{}, 1)}
	logs := &syncBuf{}
	rn := &Renewer{Holder: tlsclient.NewHolder(creds), Client: e, Clock: clock, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "enroll this device again") {
		if time.Now().After(deadline) {
			t.Fatalf("no re-enroll advice within 5s:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if len(e.calls) != 0 {
		t.Error("an expired certificate was sent for renewal")
	}
}
