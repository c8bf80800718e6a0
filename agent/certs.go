package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgeagent/agent/agent/enroll"
	"github.com/edgeagent/agent/internal/atomicfile"
	"github.com/edgeagent/agent/pki"
	"github.com/edgeagent/agent/pki/est"
	"github.com/edgeagent/agent/tlsclient"
)

// This file is the certificate life cycle inside the daemon: on every device
// the renewal of its client certificate, and on a master the EST enrollment
// server and the upkeep of the broker's CRL.

// renewer returns the renewal loop for the client certificate, renewing
// through enroll.server authenticated by the current certificate.
func (d *Daemon) renewer() *enroll.Renewer {
	return &enroll.Renewer{
		Holder: d.creds,
		Client: &est.Client{URL: d.cfg.Enroll.Server, Roots: d.creds.Current().Roots, Timeout: 30 * time.Second},
		Clock:  d.env.Clock,
		Logger: d.log.With("part", "renew"),
		// The retained status carries cert_expires: say the new one now,
		// not at the next reconnect.
		Renewed: func(*tlsclient.Credentials) {
			if lctx := d.link.current(); lctx != nil {
				_ = d.publishJSON(lctx, d.topics.status, d.statusPayload("online"), true, nil)
			}
		},
	}
}

// estAuthority is the master's CA directory behind the EST endpoints.
type estAuthority struct {
	dir  *pki.Dir
	days int
	now  func() time.Time
}

func (a *estAuthority) CACerts(context.Context) ([]*x509.Certificate, error) {
	return []*x509.Certificate{a.dir.CA.Cert}, nil
}

func (a *estAuthority) Enroll(_ context.Context, id, token string, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	c, err := a.dir.Enroll(id, token, csr, a.days, a.now())
	return c, estError(err)
}

func (a *estAuthority) Reenroll(_ context.Context, cur *x509.Certificate, csr *x509.CertificateRequest) (*x509.Certificate, error) {
	c, err := a.dir.Reenroll(cur, csr, a.days, a.now())
	return c, estError(err)
}

// estError maps the CA's refusals to EST's HTTP statuses.
func estError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pki.ErrToken):
		return fmt.Errorf("%w: %w", est.ErrUnauthorized, err)
	case errors.Is(err, pki.ErrPolicy), errors.Is(err, pki.ErrNotFound):
		return fmt.Errorf("%w: %w", est.ErrForbidden, err)
	}
	return err
}

// estServerCert issues, and reissues two thirds into its life, the EST
// server's own certificate from the CA; its key stays in memory.
type estServerCert struct {
	dir   *pki.Dir
	names []string
	now   func() time.Time
	log   *slog.Logger

	mu   sync.Mutex
	cert *tls.Certificate
}

// estServerDays is the lifetime of the EST server's certificate.
const estServerDays = 30

func (s *estServerCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cert != nil && now.Before(enroll.Due(s.cert.Leaf, 0)) {
		return s.cert, nil
	}
	p, err := s.dir.Issue(pki.IssueOptions{CN: s.names[0], Server: true, SANs: s.names[1:], Days: estServerDays}, now)
	if err != nil {
		if s.cert != nil && now.Before(s.cert.Leaf.NotAfter) {
			s.log.Error("could not reissue the enrollment server's certificate; keeping the current one", "err", err)
			return s.cert, nil
		}
		return nil, fmt.Errorf("issue the enrollment server's certificate: %w", err)
	}
	s.cert = &tls.Certificate{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key, Leaf: p.Cert}
	s.log.Info("enrollment server certificate issued", "names", s.names, "serial", pki.FormatSerial(p.Cert.SerialNumber))
	return s.cert, nil
}

// estNames are the names a device may reach the EST server by: the host
// name (and its .local mDNS name, which the _est._tcp advertisement
// carries), broker.host (enroll.server's default host: the master sits
// beside the broker), the listen address (or every local address when it
// is unspecified) and enroll.names.
func (d *Daemon) estNames() []string {
	var names []string
	add := func(n string) {
		n = strings.TrimSuffix(n, ".")
		if n == "" {
			return
		}
		for _, m := range names {
			if strings.EqualFold(m, n) {
				return
			}
		}
		names = append(names, n)
	}
	if h, err := os.Hostname(); err == nil && pki.ValidDNSName(h) == nil {
		add(h)
		if !strings.HasSuffix(h, ".local") {
			add(h + ".local") // zeroconf's SRV target for this host
		}
	}
	add(d.cfg.Broker.Host)
	host, _, _ := net.SplitHostPort(d.cfg.Enroll.Listen)
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		add(ip.String())
	} else if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				add(ipn.IP.String())
			}
		}
	}
	for _, n := range d.cfg.Enroll.Names {
		add(n)
	}
	return names
}

// serveEnrollment serves EST on enroll.listen until ctx ends.
func (d *Daemon) serveEnrollment(ctx context.Context, ln net.Listener) error {
	log := d.log.With("part", "enroll")
	sc := &estServerCert{dir: d.ca, names: d.estNames(), now: d.now, log: log}
	if _, err := sc.get(nil); err != nil {
		ln.Close()
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(d.ca.CA.Cert)
	tc := est.ServerTLSConfigFunc(sc.get, roots)
	srv := &http.Server{
		Handler: est.NewHandler(&estAuthority{dir: d.ca, days: d.cfg.Enroll.CertDays, now: d.now},
			est.ServerOptions{Logger: log, Now: d.now}),
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		// Handshake failures (a scanner, a device with the wrong CA) are
		// the client's business: debug, not error.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("serving enrollment (EST)", "listen", ln.Addr().String(), "names", sc.names, "cert_days", d.cfg.Enroll.CertDays)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("enrollment server on %s: %w", d.cfg.Enroll.Listen, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// crlLoop keeps the broker's CRL fresh: every crl.check it has the CA
// regenerate its CRL when it is due (half its validity left), installs the
// CA's CRL at crl.file when it differs from what is there (after a renewal
// or an `agent ca revoke`) and has Mosquitto reload it. An expired CRL makes
// Mosquitto refuse every client, so a failure here is logged loudly and
// retried at the next check.
func (d *Daemon) crlLoop(ctx context.Context) error {
	log := d.log.With("part", "crl")
	t := time.NewTicker(d.cfg.CRL.Check.Duration)
	defer t.Stop()
	for {
		if err := d.keepCRL(log); err != nil {
			log.Error("broker CRL not kept fresh; retrying", "in", d.cfg.CRL.Check.Duration, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *Daemon) keepCRL(log *slog.Logger) error {
	data, regenerated, err := d.ca.RefreshCRL(d.now(), pki.CRLValidity/2)
	if err != nil {
		return err
	}
	if regenerated {
		log.Info("CRL regenerated", "dir", d.ca.Path)
	}
	path := d.cfg.CRL.File
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("crl.file: %w", err)
	}
	if err := reloadBroker(d.cfg.CRL.PIDFile); err != nil {
		return fmt.Errorf("CRL installed at %s but the broker was not reloaded: %w", path, err)
	}
	log.Info("CRL installed and the broker reloaded", "file", path, "pid_file", d.cfg.CRL.PIDFile)
	return nil
}

// reloadBroker sends SIGHUP to the Mosquitto whose pid is in pidFile, after
// checking that the pid is a Mosquitto (a stale pid file must not make us
// signal another process).
func reloadBroker(pidFile string) error {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("crl.pid_file: %w (set pid_file in mosquitto.conf and crl.pid_file to the same path)", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("crl.pid_file %s: %q is not a process id", pidFile, bytes.TrimSpace(data))
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return fmt.Errorf("crl.pid_file %s: process %d is not running (a stale pid file?)", pidFile, pid)
	}
	if name := strings.TrimSpace(string(comm)); !strings.HasPrefix(name, "mosquitto") {
		return fmt.Errorf("crl.pid_file %s: process %d is %q, not mosquitto: not signalling it", pidFile, pid, name)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("SIGHUP mosquitto (pid %d): %w", pid, err)
	}
	return nil
}
