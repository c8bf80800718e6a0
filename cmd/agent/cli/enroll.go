package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edgeagent/agent/agent/enroll"
	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/pki"
	"github.com/edgeagent/agent/pki/est"
)

// enrollCmd is `agent enroll`: get this device its certificate with a
// one-time token.
func enrollCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	caPath := fs.String("ca", "", "the fleet CA certificate (ca.crt): the only CA the server and the new certificate are checked against")
	server := fs.String("server", "", "the EST server's URL, e.g. https://master.local:8443 (default: find the master by mDNS, "+discovery.EnrollService+")")
	token := fs.String("token", "", "the one-time token from `agent ca token`")
	id := fs.String("id", "", "the device id (default: the id the token was made for)")
	dir := fs.String("dir", "/etc/agent/tls", "where to write ca.crt, device.crt and device.key")
	key := fs.String("key", "ec", "key type: ec (P-256), rsa2048 or rsa4096")
	sans := fs.String("san", "", "extra subjectAltNames for the certificate: DNS names and IPs, comma-separated")
	overwrite := fs.Bool("overwrite", false, "replace an existing key and certificate")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	var ifaces listFlag
	fs.Var(&ifaces, "interface", "interface to look for the master on (repeatable; default: all multicast-capable)")
	if err := fs.Parse(args); err != nil {
		return ExitRefused
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agent enroll: unexpected argument %q\n", fs.Arg(0))
		return ExitRefused
	}
	if *caPath == "" || *token == "" {
		fmt.Fprintln(stderr, "agent enroll: --ca ca.crt and --token TOKEN are required (the token comes from `agent ca token --id ID` on the master)")
		return ExitRefused
	}
	if tid, ok := pki.TokenID(*token); ok {
		if *id == "" {
			*id = tid
		} else if *id != tid {
			fmt.Fprintf(stderr, "agent enroll: --id %q, but the token was made for %q: drop --id or ask for a token for %q\n", *id, tid, *id)
			return ExitRefused
		}
	}
	if *id == "" {
		fmt.Fprintln(stderr, "agent enroll: --id ID is required with a token that does not carry one")
		return ExitRefused
	}
	kt, err := pki.ParseKeyType(*key)
	if err != nil {
		fmt.Fprintf(stderr, "agent enroll: %v\n", err)
		return ExitRefused
	}
	caPEM, err := os.ReadFile(*caPath)
	if err != nil {
		fmt.Fprintf(stderr, "agent enroll: --ca: %v\n", err)
		return ExitRefused
	}
	roots, err := enroll.ParseCAPEM(caPEM)
	if err != nil {
		fmt.Fprintf(stderr, "agent enroll: --ca %s: %v\n", *caPath, err)
		return ExitRefused
	}
	var names []string
	if *sans != "" {
		names = strings.Split(*sans, ",")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var client *est.Client
	if *server != "" {
		u, err := url.Parse(*server)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			fmt.Fprintf(stderr, "agent enroll: --server %q: an https URL like https://master.local:%d\n", *server, 8443)
			return ExitRefused
		}
		client = &est.Client{URL: *server, Roots: roots}
	} else {
		client, err = findEST(ctx, roots, ifaces, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "agent enroll: %v\n", err)
			return ExitFailure
		}
	}
	req := enroll.Request{ID: *id, Token: *token, CAPEM: caPEM, Key: kt, SANs: names, Dir: *dir, Overwrite: *overwrite}
	cert, err := enroll.Enroll(ctx, client, req)
	if err != nil {
		fmt.Fprintf(stderr, "agent %v\n", err)
		if errors.Is(err, enroll.ErrExists) {
			return ExitRefused
		}
		return ExitFailure
	}
	f := enroll.DirFiles(*dir)
	fmt.Fprintf(stdout, "enrolled as %s: serial %s, valid until %s\n  %s\n  %s (0600)\n  %s\n", *id,
		pki.FormatSerial(cert.SerialNumber), cert.NotAfter.UTC().Format(time.DateOnly), f.Cert, f.Key, f.CA)
	return ExitOK
}

// findEST looks for masters advertising EST and returns a client for the
// first whose certificate the CA verifies.
func findEST(ctx context.Context, pool *x509.CertPool, ifaces []string, stderr io.Writer) (*est.Client, error) {
	b := &discovery.MDNS{Interfaces: ifaces, Settle: 2 * time.Second}
	svcs, err := b.Browse(ctx, discovery.EnrollService, 3*time.Second)
	if err != nil {
		return nil, fmt.Errorf("look for the master (%s over mDNS): %w", discovery.EnrollService, err)
	}
	if len(svcs) == 0 {
		return nil, fmt.Errorf("no master answered for %s over mDNS within 3s: give --server https://MASTER:%d", discovery.EnrollService, 8443)
	}
	var tried []string
	for _, s := range svcs {
		host := strings.TrimSuffix(s.Host, ".")
		for _, a := range s.Addrs {
			u := "https://" + net.JoinHostPort(a.String(), strconv.Itoa(s.Port))
			c := &est.Client{URL: u, Roots: pool, ServerName: host, Timeout: 5 * time.Second}
			// cacerts proves the server holds a certificate from our CA before
			// the one-time token is sent to it.
			if _, err := c.CACerts(ctx); err != nil {
				fmt.Fprintf(stderr, "agent enroll: skipping %q at %s: %v\n", s.Instance, u, err)
				tried = append(tried, u)
				continue
			}
			return c, nil
		}
	}
	return nil, fmt.Errorf("no master found by mDNS is verified by the CA file (tried %s): give --server", strings.Join(tried, ", "))
}
