package brokertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/edgeagent/agent/pki"
)

// BrokerHost is the name the fleet's broker certificate is issued for.
const BrokerHost = "broker.test"

// Fleet is a throwaway PKI in one directory: ca.crt, broker.{crt,key} (SANs
// broker.test and 127.0.0.1, so mosquitto_sub -h 127.0.0.1 verifies it too),
// monitor.{crt,key} and ops.{crt,key}.
type Fleet struct {
	Dir    string
	CA     *pki.CA
	CAFile string

	BrokerCert, BrokerKey string
	Monitor, Ops          Creds
}

// Creds are a client's certificate and key files.
type Creds struct{ Cert, Key string }

// NewFleet makes the PKI in dir (which must exist).
func NewFleet(dir string) (*Fleet, error) {
	ca, err := pki.NewCA("Test Fleet CA", 0)
	if err != nil {
		return nil, err
	}
	caFile := dir + "/ca.crt"
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	return FleetWithCA(dir, ca, caFile)
}

// FleetWithCA makes the broker's and the monitors' certificates in dir
// from an existing CA whose certificate is in caFile (a CA directory made
// by `agent ca init`, say).
func FleetWithCA(dir string, ca *pki.CA, caFile string) (*Fleet, error) {
	f := &Fleet{Dir: dir, CA: ca, CAFile: caFile}
	b, err := ca.Issue(pki.Template{CN: BrokerHost, DNSNames: []string{BrokerHost}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		return nil, err
	}
	if f.BrokerCert, f.BrokerKey, err = b.WriteFiles(dir, "broker"); err != nil {
		return nil, err
	}
	if f.Monitor, err = f.Device("monitor"); err != nil {
		return nil, err
	}
	if f.Ops, err = f.Device("ops"); err != nil {
		return nil, err
	}
	return f, nil
}

// Device issues a client certificate with CN id and writes id.crt/id.key.
func (f *Fleet) Device(id string) (Creds, error) {
	return f.Issue(id, pki.Template{CN: id, Client: true})
}

// Issue issues any certificate from the fleet CA and writes name.crt/name.key.
func (f *Fleet) Issue(name string, t pki.Template) (Creds, error) {
	p, err := f.CA.Issue(t)
	if err != nil {
		return Creds{}, err
	}
	c, k, err := p.WriteFiles(f.Dir, name)
	if err != nil {
		return Creds{}, err
	}
	return Creds{Cert: c, Key: k}, nil
}

// Start runs a broker with the fleet's CA and (unless o overrides it) broker
// certificate.
func (f *Fleet) Start(ctx context.Context, o Options) (*Broker, error) {
	cert, key := f.BrokerCert, f.BrokerKey
	if o.CertFile != "" {
		cert, key = o.CertFile, o.KeyFile
	}
	bdir, err := os.MkdirTemp(f.Dir, "broker-")
	if err != nil {
		return nil, err
	}
	b, err := start(ctx, bdir, f.CAFile, cert, key, o)
	if err != nil {
		return nil, fmt.Errorf("brokertest: %w", err)
	}
	return b, nil
}

// Client returns an independent mosquitto_sub/pub client with creds.
func (f *Fleet) Client(b *Broker, c Creds) *Client {
	return &Client{Broker: b, CA: f.CAFile, Cert: c.Cert, Key: c.Key}
}

// AgentConfig is an agent's TOML for device creds c dialling 127.0.0.1:port
// with the fleet's CA: id "" leaves the id to the certificate's CN, tlsMore
// goes inside [tls], and more (sensor and actuator tables, …) follows.
func (f *Fleet) AgentConfig(id string, c Creds, port int, tlsMore, more string) string {
	idLine := ""
	if id != "" {
		idLine = fmt.Sprintf("id = %q\n", id)
	}
	return fmt.Sprintf(`%s[broker]
host = %q
port = %d
address = "127.0.0.1"
hosts_file = ""
[tls]
ca = %q
cert = %q
key = %q
%s
%s`, idLine, BrokerHost, port, f.CAFile, c.Cert, c.Key, tlsMore, more)
}

// Foreign issues a client certificate with CN id from another CA (one the
// broker does not know) and writes a CA bundle of the fleet CA and that
// CA: a device trusting the bundle passes its own checks, and the broker
// refuses it with "unknown CA" (alert 48).
func (f *Fleet) Foreign(id string, other *pki.CA) (c Creds, bundle string, err error) {
	p, err := other.Issue(pki.Template{CN: id, Client: true})
	if err != nil {
		return Creds{}, "", err
	}
	if c.Cert, c.Key, err = p.WriteFiles(f.Dir, "foreign-"+id); err != nil {
		return Creds{}, "", err
	}
	fleetCA, err := os.ReadFile(f.CAFile)
	if err != nil {
		return Creds{}, "", err
	}
	bundle = filepath.Join(f.Dir, "bundle-"+id+".crt")
	if err := os.WriteFile(bundle, append(fleetCA, other.CertPEM...), 0o644); err != nil {
		return Creds{}, "", err
	}
	return c, bundle, nil
}
