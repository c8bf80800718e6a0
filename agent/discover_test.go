package agent

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

// fakeBrowser stands in for mDNS on loopback: the real multicast path is
// tested in network namespaces (cmd/agent), this one tests what the agent
// does with answers.
type fakeBrowser struct {
	mu    sync.Mutex
	svcs  []discovery.Service
	calls int
}

func (f *fakeBrowser) set(s ...discovery.Service) { f.mu.Lock(); f.svcs = s; f.mu.Unlock() }
func (f *fakeBrowser) Browse(ctx context.Context, service string, window time.Duration) ([]discovery.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return append([]discovery.Service(nil), f.svcs...), nil
}

// spoofer is a TLS server with a self-signed certificate for broker.test.
func spoofer(t *testing.T) netip.AddrPort {
	t.Helper()
	ca, err := pki.NewCA(brokertest.BrokerHost, 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

func svc(instance string, ap netip.AddrPort, txt ...string) discovery.Service {
	return discovery.Service{Instance: instance, Host: "h.local.", Port: int(ap.Port()), Addrs: []netip.Addr{ap.Addr()}, TXT: txt}
}

// TestDiscoveryVerifiesAndPins: among three advertisements only the one
// whose TLS handshake verifies for broker.test is used; the spoofers are
// skipped with a reason; the hosts file gets broker.test → that address
// and nothing else; when the broker moves, the agent and the pin follow.
func TestDiscoveryVerifiesAndPins(t *testing.T) {
	e := newEnv(t)
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost\n# keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	real := netip.MustParseAddrPort(e.broker.Addr)
	fb := &fakeBrowser{}
	fb.set(
		svc("a-spoof", spoofer(t), "host=broker.test"),
		svc("b-txt-names-other-host", real, "host=evil.example"),
		svc("c-broker", real, "host=broker.test"),
	)
	cfg := e.config("dev1", simParts)
	cfg.Broker.Address, cfg.Broker.Discover, cfg.Broker.HostsFile = "", true, hosts
	r := e.startOpts(cfg, Options{Browser: fb})
	r.waitLog(t, "msg=online", 10*time.Second)
	for _, want := range []string{`skipping advertised broker: it is not broker.test" id=dev1 instance=a-spoof`, `ignoring advertisement" id=dev1 instance=b-txt-names-other-host`, `discovered broker" id=dev1 instance=c-broker`} {
		r.waitLog(t, want, time.Second)
	}
	data := waitFile(t, hosts, "127.0.0.1\tbroker.test", 5*time.Second)
	if !strings.Contains(string(data), "127.0.0.1\tbroker.test") || strings.Contains(string(data), "evil") || !strings.HasPrefix(string(data), "127.0.0.1\tlocalhost\n# keep me\n") {
		t.Errorf("hosts file:\n%s", data)
	}

	// The broker moves to 127.0.0.2 and is advertised there.
	moved := brokertest.Options{Listen: "127.0.0.2", Port: e.broker.Port}
	e.broker.Stop()
	// The old address now accepts TCP and never answers TLS (as a host that
	// took the address over might): the agent must not wait on it.
	silent, err := net.Listen("tcp", real.String())
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	})
	b2, err := e.fleet.Start(e.ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b2.Stop)
	fb.set(svc("c-broker", netip.MustParseAddrPort(b2.Addr), "host=broker.test"))
	t0 := time.Now()
	r.waitLog(t, "addr=127.0.0.2", 15*time.Second)
	data = waitFile(t, hosts, "127.0.0.2\tbroker.test", 10*time.Second)
	t.Logf("followed the move in %v", time.Since(t0))
	if strings.Count(string(data), "broker.test") != 1 {
		t.Errorf("hosts file maps broker.test more than once:\n%s", data)
	}
}

// waitFile polls path until it contains want (bounded) and returns it.
func waitFile(t *testing.T, path, want string, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return data
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no %q within %v:\n%s", path, want, timeout, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFixedAddressPinned: a fixed broker.address is pinned the same way
// once a connection to it verified, and the pin stays after a clean stop
// (other clients on the board rely on it).
func TestFixedAddressPinned(t *testing.T) {
	e := newEnv(t)
	hosts := filepath.Join(t.TempDir(), "hosts")
	cfg := e.config("dev1", simParts)
	cfg.Broker.HostsFile = hosts
	r := e.start(cfg)
	r.waitLog(t, "msg=online", 10*time.Second)
	waitFile(t, hosts, "127.0.0.1\tbroker.test", 5*time.Second)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(hosts); !strings.Contains(string(data), "127.0.0.1\tbroker.test") {
		t.Errorf("pin gone after a clean stop:\n%s", data)
	}
}

// TestUnwritableHostsFile: where the hosts file cannot be written the
// agent says so and still connects, to the verified address it dialled.
func TestUnwritableHostsFile(t *testing.T) {
	e := newEnv(t)
	fb := &fakeBrowser{}
	fb.set(svc("c-broker", netip.MustParseAddrPort(e.broker.Addr), "host=broker.test"))
	cfg := e.config("dev1", simParts)
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Broker.Address, cfg.Broker.Discover, cfg.Broker.HostsFile = "", true, filepath.Join(notDir, "hosts")
	r := e.startOpts(cfg, Options{Browser: fb})
	r.waitLog(t, "msg=online", 10*time.Second)
	r.waitLog(t, "could not pin the broker in the hosts file", 5*time.Second)
}
