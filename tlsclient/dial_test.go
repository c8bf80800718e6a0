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
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

const brokerHost = brokertest.BrokerHost

// env is a fleet PKI, a CA the broker does not know, and the brokers of the
// tests, started once each on first use.
type env struct {
	f       *brokertest.Fleet
	other   *pki.CA
	brokers map[string]*brokertest.Broker
	addrs   map[string]string // extra listeners: "tls13", "plain"
	cleanup func(func())      // the top-level test's: brokers outlive subtests
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if err := brokertest.Available(); err != nil {
		t.Skip(err)
	}
	f, err := brokertest.NewFleet(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("Other Broker CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	return &env{f: f, other: other, brokers: map[string]*brokertest.Broker{}, addrs: map[string]string{}, cleanup: t.Cleanup}
}

func (e *env) start(t *testing.T, o brokertest.Options) *brokertest.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := e.f.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	e.cleanup(b.Stop)
	return b
}

// brokerWith starts (once) a broker whose certificate is tmpl issued by ca.
func (e *env) brokerWith(t *testing.T, name string, ca *pki.CA, tmpl pki.Template) *brokertest.Broker {
	t.Helper()
	if b, ok := e.brokers[name]; ok {
		return b
	}
	p, err := ca.Issue(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := p.WriteFiles(e.f.Dir, "broker-"+name)
	if err != nil {
		t.Fatal(err)
	}
	b := e.start(t, brokertest.Options{CertFile: cert, KeyFile: key})
	e.brokers[name] = b
	return b
}

// fleetBroker starts (once) the fleet's broker with two more listeners:
// TLS 1.3 only, and plain MQTT. Mosquitto 2.0 reads brokertest's
// "tls_version tlsv1.2" as a minimum, so the main listener negotiates TLS 1.3
// unless the client caps it at 1.2: both ways a broker refuses a client
// certificate (an alert during Dial under 1.2, on the first read under 1.3)
// are reachable.
func (e *env) fleetBroker(t *testing.T) *brokertest.Broker {
	t.Helper()
	if b, ok := e.brokers["fleet"]; ok {
		return b
	}
	tls13, plain := freePort(t), freePort(t)
	extra := fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"+
		"require_certificate true\nuse_identity_as_username true\ntls_version tlsv1.3\n"+
		"listener %d 127.0.0.1\n", tls13, e.f.CAFile, e.f.BrokerCert, e.f.BrokerKey, plain)
	b := e.start(t, brokertest.Options{Extra: extra})
	e.brokers["fleet"] = b
	e.addrs["tls13"] = fmt.Sprintf("127.0.0.1:%d", tls13)
	e.addrs["plain"] = fmt.Sprintf("127.0.0.1:%d", plain)
	return b
}

// crlBroker starts (once) a fleet broker with a CRL that revokes the
// returned device certificate.
func (e *env) crlBroker(t *testing.T) (*brokertest.Broker, *Credentials) {
	t.Helper()
	revoked := e.device(t, "revoked")
	if b, ok := e.brokers["crl"]; ok {
		return b, revoked
	}
	crlPEM, err := e.f.CA.RevocationList([]*x509.Certificate{revoked.Cert.Leaf}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	crl := filepath.Join(e.f.Dir, "fleet.crl")
	if err := os.WriteFile(crl, crlPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	b := e.start(t, brokertest.Options{Extra: "crlfile " + crl + "\n"})
	e.brokers["crl"] = b
	return b, revoked
}

// device issues a fleet device certificate and loads it as the agent does.
func (e *env) device(t *testing.T, id string) *Credentials {
	t.Helper()
	if _, err := os.Stat(filepath.Join(e.f.Dir, id+".crt")); err != nil {
		if _, err := e.f.Device(id); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Load(Files{CA: e.f.CAFile, Cert: filepath.Join(e.f.Dir, id+".crt"), Key: filepath.Join(e.f.Dir, id+".key")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// unchecked builds credentials Load would refuse (a client certificate the
// broker must reject), trusting the fleet CA for the broker.
func (e *env) unchecked(t *testing.T, ca *pki.CA, tmpl pki.Template) *Credentials {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(e.f.CA.Cert)
	c := &Credentials{Roots: roots}
	if ca == nil {
		return c // no client certificate at all
	}
	p, err := ca.Issue(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cert, err = tls.X509KeyPair(p.CertPEM, p.KeyPEM); err != nil {
		t.Fatal(err)
	}
	return c
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// mqttConnect sends an MQTT 3.1.1 CONNECT and waits (bounded) for a
// successful CONNACK. Under TLS 1.3 this is where a refused client
// certificate shows up, as the error of the read.
func mqttConnect(conn *tls.Conn, clientID string) error {
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	pkt := []byte{0x10, byte(12 + len(clientID)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, byte(len(clientID))}
	pkt = append(pkt, clientID...)
	_, werr := conn.Write(pkt)
	// A broker that refuses our certificate after the handshake sends an
	// alert and closes; if our CONNECT crossed the close, the write sees a
	// reset, but the alert is still there to read and names the cause.
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if ack != [4]byte{0x20, 2, 0, 0} {
		return fmt.Errorf("CONNACK = % x, want 20 02 00 00", ack)
	}
	return nil
}

type connectResult struct {
	dialErr error // from Dial
	readErr error // from the MQTT exchange after a successful Dial
}

func (r connectResult) err() error {
	if r.dialErr != nil {
		return r.dialErr
	}
	return r.readErr
}

func connect(addr string, cfg *tls.Config) connectResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := Dial(ctx, addr, cfg)
	if err != nil {
		return connectResult{dialErr: err}
	}
	defer conn.Close()
	return connectResult{readErr: mqttConnect(conn, "tlsclient-test")}
}

func TestBroker(t *testing.T) {
	e := newEnv(t)
	dev := e.device(t, "dev1")
	now := time.Now()
	expiredUntil := now.Add(-24 * time.Hour)

	fleet := func(t *testing.T) string { return e.fleetBroker(t).Addr }
	tls13 := func(t *testing.T) string { e.fleetBroker(t); return e.addrs["tls13"] }
	plain := func(t *testing.T) string { e.fleetBroker(t); return e.addrs["plain"] }
	sanless := func(t *testing.T) string {
		return e.brokerWith(t, "sanless", e.f.CA, pki.Template{CN: brokerHost, Server: true}).Addr
	}
	otherCA := func(t *testing.T) string {
		return e.brokerWith(t, "otherca", e.other, pki.Template{CN: brokerHost, DNSNames: []string{brokerHost}, Server: true}).Addr
	}
	expired := func(t *testing.T) string {
		return e.brokerWith(t, "expired", e.f.CA, pki.Template{CN: brokerHost, DNSNames: []string{brokerHost}, Server: true,
			NotBefore: now.Add(-48 * time.Hour), NotAfter: expiredUntil}).Addr
	}
	elsewhere := func(t *testing.T) string {
		return e.brokerWith(t, "elsewhere", e.f.CA, pki.Template{CN: "elsewhere.test", DNSNames: []string{"elsewhere.test", "mqtt.elsewhere.test"}, Server: true}).Addr
	}
	crl := func(t *testing.T) string { b, _ := e.crlBroker(t); return b.Addr }

	var (
		foreignClient = func(t *testing.T) *Credentials {
			return e.unchecked(t, e.other, pki.Template{CN: "dev1", Client: true})
		}
		expiredClient = func(t *testing.T) *Credentials {
			return e.unchecked(t, e.f.CA, pki.Template{CN: "dev1", Client: true, NotBefore: now.Add(-48 * time.Hour), NotAfter: expiredUntil})
		}
		serverOnlyClient = func(t *testing.T) *Credentials {
			return e.unchecked(t, e.f.CA, pki.Template{CN: "dev1", Server: true})
		}
		noClientCert  = func(t *testing.T) *Credentials { return e.unchecked(t, nil, pki.Template{}) }
		revokedClient = func(t *testing.T) *Credentials { _, c := e.crlBroker(t); return c }
	)
	expiredDate := expiredUntil.UTC().Format(time.RFC3339)

	tests := []struct {
		name       string
		addr       func(*testing.T) string
		serverName string
		legacyCN   bool
		creds      func(*testing.T) *Credentials // nil: dev1
		maxVersion uint16
		want       []string // nil: the MQTT connection must succeed
		lateAlert  bool     // Dial succeeds, the refusal arrives on the read
	}{
		{name: "ok", addr: fleet},
		{name: "ok legacy with SANs", addr: fleet, legacyCN: true},
		{name: "ok TLS 1.2", addr: fleet, maxVersion: tls.VersionTLS12},
		{name: "ok TLS 1.3 only listener", addr: tls13},
		{name: "ok legacy TLS 1.2", addr: sanless, legacyCN: true, maxVersion: tls.VersionTLS12},
		{name: "ok with CRL", addr: crl},
		{name: "name not in cert", addr: fleet, serverName: "mqtt.example",
			want: []string{"DNS:broker.test, IP:127.0.0.1", `not "mqtt.example"`}},
		{name: "SAN-less refused", addr: sanless,
			want: []string{"no subjectAltName (only CN=broker.test)", "subjectAltName=DNS:broker.test", "-addext", "tls.legacy_cn = true"}},
		{name: "SAN-less accepted with legacy_cn", addr: sanless, legacyCN: true},
		{name: "SAN-less other name", addr: sanless, serverName: "mqtt.example",
			want: []string{"no subjectAltName", "CN=broker.test", `not "mqtt.example"`, "subjectAltName=DNS:mqtt.example"}},
		{name: "legacy CN differs", addr: sanless, serverName: "mqtt.example", legacyCN: true,
			want: []string{"CN=broker.test", `not "mqtt.example"`, "subjectAltName=DNS:mqtt.example"}},
		{name: "legacy CN case-insensitive", addr: sanless, serverName: "BROKER.test", legacyCN: true},
		{name: "broker from another CA", addr: otherCA,
			want: []string{`signed by "CN=Other Broker CA"`, "tls.ca does not contain"}},
		{name: "legacy broker from another CA", addr: otherCA, legacyCN: true,
			want: []string{`signed by "CN=Other Broker CA"`, "tls.ca does not contain"}},
		{name: "broker cert expired", addr: expired,
			want: []string{"broker certificate (CN=broker.test) expired on " + expiredDate}},
		{name: "legacy broker cert expired", addr: expired, legacyCN: true,
			want: []string{"broker certificate (CN=broker.test) expired on " + expiredDate}},
		{name: "SAN cert for another name", addr: elsewhere,
			want: []string{"DNS:elsewhere.test, DNS:mqtt.elsewhere.test", `not "broker.test"`}},
		{name: "legacy SAN cert for another name", addr: elsewhere, legacyCN: true,
			want: []string{"DNS:elsewhere.test, DNS:mqtt.elsewhere.test", `not "broker.test"`}},
		{name: "client cert from another CA TLS 1.2", addr: fleet, creds: foreignClient, maxVersion: tls.VersionTLS12,
			want: []string{`"unknown certificate authority" (48)`, "cafile", "fleet CA"}},
		{name: "client cert from another CA TLS 1.3", addr: fleet, creds: foreignClient, lateAlert: true,
			want: []string{`"unknown certificate authority" (48)`, "cafile", "fleet CA"}},
		{name: "client cert revoked TLS 1.2", addr: crl, creds: revokedClient, maxVersion: tls.VersionTLS12,
			want: []string{`"revoked certificate" (44)`, "CRL", "new certificate"}},
		{name: "client cert revoked TLS 1.3", addr: crl, creds: revokedClient, lateAlert: true,
			want: []string{`"revoked certificate" (44)`, "CRL", "new certificate"}},
		{name: "client cert expired TLS 1.2", addr: fleet, creds: expiredClient, maxVersion: tls.VersionTLS12,
			want: []string{`"expired certificate" (45)`, "renew tls.cert", "clock"}},
		{name: "client cert expired TLS 1.3", addr: fleet, creds: expiredClient, lateAlert: true,
			want: []string{`"expired certificate" (45)`}},
		{name: "client cert without clientAuth", addr: fleet, creds: serverOnlyClient,
			want: []string{`"unsupported certificate" (43)`, "clientAuth"}},
		{name: "no client cert TLS 1.2", addr: fleet, creds: noClientCert, maxVersion: tls.VersionTLS12,
			want: []string{`"handshake failure" (40)`, "client certificate"}},
		{name: "no client cert TLS 1.3", addr: fleet, creds: noClientCert, lateAlert: true,
			want: []string{`"certificate required" (116)`, "set tls.cert and tls.key"}},
		{name: "no common TLS version", addr: tls13, maxVersion: tls.VersionTLS12,
			want: []string{`"protocol version not supported" (70)`, "tls_version"}},
		{name: "plain MQTT listener", addr: plain,
			want: []string{"during the TLS handshake", "TLS listener", "8883"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds := dev
			if tt.creds != nil {
				creds = tt.creds(t)
			}
			serverName := tt.serverName
			if serverName == "" {
				serverName = brokerHost
			}
			cfg := Config(NewHolder(creds), serverName, tt.legacyCN)
			cfg.MaxVersion = tt.maxVersion
			addr := tt.addr(t)
			res := connect(addr, cfg)
			if tt.want == nil {
				if err := res.err(); err != nil {
					t.Fatalf("connect to %s as %q: %v\nExplain: %s", addr, serverName, err, Explain(err, serverName))
				}
				return
			}
			err := res.err()
			if err == nil {
				t.Fatalf("connect to %s as %q succeeded, want a refusal", addr, serverName)
			}
			if tt.lateAlert && res.dialErr != nil {
				t.Errorf("Dial failed (%v); under TLS 1.3 the refusal should come after the handshake", res.dialErr)
			}
			if tt.maxVersion == tls.VersionTLS12 && res.dialErr == nil {
				t.Errorf("Dial succeeded; under TLS 1.2 the refusal should come during the handshake (then: %v)", res.readErr)
			}
			got := Explain(err, serverName)
			t.Logf("Explain: %s", got)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain(%v)\n= %q\nwant it to contain %q", err, got, w)
				}
			}
		})
	}
}

// TestHolderSwapAfterRevocation is the renewal path: the same tls.Config
// first presents a revoked certificate, then, after Swap, the new one.
func TestHolderSwapAfterRevocation(t *testing.T) {
	e := newEnv(t)
	b, revoked := e.crlBroker(t)
	h := NewHolder(revoked)
	cfg := Config(h, brokerHost, false)
	if err := connect(b.Addr, cfg).err(); err == nil || !strings.Contains(Explain(err, brokerHost), "revoked") {
		t.Fatalf("with the revoked certificate: err = %v, want a revocation", err)
	}
	renewed := e.device(t, "renewed")
	h.Swap(renewed)
	h.Swap(nil) // a failed reload keeps the current credentials
	if got := h.Current(); got != renewed {
		t.Fatalf("Current = %v, want the renewed credentials", got)
	}
	if err := connect(b.Addr, cfg).err(); err != nil {
		t.Fatalf("after Swap: %v (%s)", err, Explain(err, brokerHost))
	}
}

// goServer is a crypto/tls server on loopback that requires client
// certificates for clientAuth from the fleet CA and reports the CN of each
// client it accepted.
func goServer(t *testing.T, e *env, version uint16) (addr string, cns <-chan string) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(e.f.BrokerCert, e.f.BrokerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.f.CA.Cert)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   version,
		MaxVersion:   version,
	})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					return
				}
				ch <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				var connect [14 + len("tlsclient-test")]byte
				if _, err := io.ReadFull(tc, connect[:]); err != nil {
					return
				}
				_, _ = tc.Write([]byte{0x20, 2, 0, 0})
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String(), ch
}

// TestHolderSwapConcurrent swaps while handshakes run: each handshake
// presents one of the two certificates, whole, and the race detector sees
// no race.
func TestHolderSwapConcurrent(t *testing.T) {
	e := newEnvNoBroker(t)
	addr, cns := goServer(t, e, tls.VersionTLS13)
	a, b := e.device(t, "a"), e.device(t, "b")
	h := NewHolder(a)
	cfg := Config(h, brokerHost, false)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				h.Swap(b)
			} else {
				h.Swap(a)
			}
			errs <- connect(addr, cfg).err()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("connect: %v", err)
		}
	}
	for i := 0; i < 8; i++ {
		if cn := <-cns; cn != "a" && cn != "b" {
			t.Errorf("server saw CN %q", cn)
		}
	}
	h.Swap(b)
	if err := connect(addr, cfg).err(); err != nil {
		t.Fatal(err)
	}
	if cn := <-cns; cn != "b" {
		t.Errorf("after Swap(b) the server saw CN %q, want b", cn)
	}
}

// newEnvNoBroker is a fleet PKI for tests that need no Mosquitto.
func newEnvNoBroker(t *testing.T) *env {
	t.Helper()
	f, err := brokertest.NewFleet(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{f: f, brokers: map[string]*brokertest.Broker{}, addrs: map[string]string{}, cleanup: t.Cleanup}
}

// TestExplainNetwork covers the failures before any TLS, and the "bad
// certificate" alert, which Mosquitto does not send for the causes above but
// crypto/tls servers do.
func TestExplainNetwork(t *testing.T) {
	e := newEnvNoBroker(t)
	dev := e.device(t, "dev1")
	cfg := Config(NewHolder(dev), brokerHost, false)

	closedPort := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts TCP (backlog), never speaks
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	tests := []struct {
		name    string
		addr    string
		timeout time.Duration
		cfg     *tls.Config
		want    []string
	}{
		{name: "connection refused", addr: closedPort, want: []string{"Nothing listens on " + closedPort + " (connection refused)", "Mosquitto", "8883"}},
		{name: "name does not resolve", addr: "broker.invalid:8883", want: []string{`"broker.invalid" does not resolve`, "/etc/hosts", "broker.address"}},
		{name: "deadline before connect", addr: closedPort, timeout: time.Nanosecond, want: []string{"Connecting to " + closedPort + " timed out"}},
		{name: "handshake timeout", addr: silent.Addr().String(), timeout: 200 * time.Millisecond,
			want: []string{"TLS handshake with " + silent.Addr().String() + " timed out", "TLS listener"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			conn, err := Dial(ctx, tt.addr, cfg)
			if err == nil {
				conn.Close()
				t.Fatalf("Dial(%s) succeeded", tt.addr)
			}
			got := Explain(err, brokerHost)
			t.Logf("Explain: %s", got)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain(%v)\n= %q\nwant it to contain %q", err, got, w)
				}
			}
		})
	}

	t.Run("bad certificate alert", func(t *testing.T) {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			addr, _ := goServer(t, e, v)
			// crypto/tls answers a client certificate without clientAuth with
			// alert 42, Mosquitto with 43.
			creds := e.unchecked(t, e.f.CA, pki.Template{CN: "dev1", Server: true})
			err := connect(addr, Config(NewHolder(creds), brokerHost, false)).err()
			got := Explain(err, brokerHost)
			if want := `"bad certificate" (42)`; !strings.Contains(got, want) {
				t.Errorf("TLS %x: Explain(%v)\n= %q\nwant it to contain %q", v, err, got, want)
			}
		}
	})

	t.Run("unknown error unchanged", func(t *testing.T) {
		err := errors.New("something else entirely")
		if got := Explain(err, brokerHost); got != err.Error() {
			t.Errorf("Explain = %q, want %q", got, err.Error())
		}
		// Load's refusal of a certificate from another CA wraps an
		// x509.UnknownAuthorityError about our certificate, not the broker's.
		other, err := pki.NewCA("Other CA", 0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := other.Issue(pki.Template{CN: "dev1", Client: true})
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := p.WriteFiles(t.TempDir(), "foreign")
		if err != nil {
			t.Fatal(err)
		}
		_, lerr := Load(Files{CA: e.f.CAFile, Cert: cert, Key: key}, time.Now())
		if _, ok := errors.AsType[x509.UnknownAuthorityError](lerr); !ok {
			t.Fatalf("Load = %v, want an UnknownAuthorityError inside", lerr)
		}
		if Explain(lerr, brokerHost) != lerr.Error() {
			t.Errorf("Explain(Load error %v) = %q, want the error unchanged", lerr, Explain(lerr, brokerHost))
		}
		if got := Explain(nil, brokerHost); got != "" {
			t.Errorf("Explain(nil) = %q, want empty", got)
		}
	})
}

func TestConfig(t *testing.T) {
	e := newEnvNoBroker(t)
	dev := e.device(t, "dev1")
	for _, legacy := range []bool{false, true} {
		cfg := Config(NewHolder(dev), brokerHost, legacy)
		if cfg.RootCAs != dev.Roots {
			t.Errorf("legacy=%v: RootCAs is not the CA file's pool", legacy)
		}
		if cfg.ServerName != brokerHost || cfg.MinVersion != tls.VersionTLS12 || cfg.GetClientCertificate == nil {
			t.Errorf("legacy=%v: ServerName %q MinVersion %x GetClientCertificate set %v",
				legacy, cfg.ServerName, cfg.MinVersion, cfg.GetClientCertificate != nil)
		}
		if cfg.InsecureSkipVerify != legacy || (cfg.VerifyConnection != nil) != legacy {
			t.Errorf("legacy=%v: InsecureSkipVerify %v, VerifyConnection set %v", legacy, cfg.InsecureSkipVerify, cfg.VerifyConnection != nil)
		}
	}
	// Without credentials nothing may verify: an empty pool, never the system roots.
	cfg := Config(NewHolder(nil), brokerHost, false)
	if cfg.RootCAs == nil {
		t.Error("RootCAs is nil (system roots) for a Holder without credentials")
	}
	if _, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{}); err == nil {
		t.Error("GetClientCertificate without credentials: no error")
	}
}
