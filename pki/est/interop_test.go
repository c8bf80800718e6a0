package est

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeagent/agent/pki"
)

// Interoperability with github.com/globalsign/est v1.0.6, the reference Go
// implementation: our Client against its estserver, its estclient against
// our handler. Its binaries are built once into the user's cache directory;
// without a module proxy the tests skip.

const globalsignVersion = "v1.0.6"

var (
	interopOnce sync.Once
	interopDir  string
	interopErr  error
)

// globalsignBinaries returns the directory holding estserver and estclient,
// building them on first use.
func globalsignBinaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("interop with globalsign/est: skipped in -short mode")
	}
	interopOnce.Do(func() { interopDir, interopErr = buildGlobalsign() })
	if interopErr != nil {
		t.Skipf("interop with globalsign/est %s skipped: %v", globalsignVersion, interopErr)
	}
	return interopDir
}

func buildGlobalsign() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "agent-est-interop", globalsignVersion)
	if isFile(filepath.Join(dir, "estserver")) && isFile(filepath.Join(dir, "estclient")) {
		return dir, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("no go command in PATH to build it")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build in a scratch module, then move into place, so an interrupted
	// build never leaves half a cache.
	mod, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(mod)
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module estinterop\n\ngo 1.26.8\n"), 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const pkg = "github.com/globalsign/est/cmd/"
	for _, args := range [][]string{
		{"get", pkg + "estserver@" + globalsignVersion, pkg + "estclient@" + globalsignVersion},
		{"build", "-o", mod + string(filepath.Separator), pkg + "estserver", pkg + "estclient"},
	} {
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", errors.New("go " + strings.Join(args, " ") + " failed (no module proxy?): " + err.Error() + "\n" + string(out))
		}
	}
	for _, name := range []string{"estserver", "estclient"} {
		if err := os.Rename(filepath.Join(mod, name), filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// TestInteropClientVsGlobalsignServer runs our Client against estserver
// with a mock CA and a TLS certificate from a pki CA.
func TestInteropClientVsGlobalsignServer(t *testing.T) {
	bin := globalsignBinaries(t)
	dir := t.TempDir()
	ca, err := pki.NewCA("Interop CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	caCrt, caKey, err := ca.WriteFiles(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	srvPair, err := ca.Issue(pki.Template{CN: "est.test", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	srvCrt, srvKey, err := srvPair.WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg, _ := json.Marshal(map[string]any{
		"mock_ca": map[string]string{"certificates": caCrt, "private_key": caKey},
		"tls": map[string]any{
			"listen_address": addr, "certificates": srvCrt, "private_key": srvKey,
			"client_cas": []string{caCrt},
		},
		"log_file": filepath.Join(dir, "estserver.log"),
	})
	cfgPath := filepath.Join(dir, "estserver.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, addr, filepath.Join(bin, "estserver"), "-config", cfgPath)

	ctx := t.Context()
	c := &Client{URL: "https://" + addr, Roots: poolOf(ca.Cert), Timeout: 10 * time.Second}
	cas, err := c.CACerts(ctx)
	if err != nil {
		t.Fatalf("CACerts: %v", err)
	}
	if len(cas) != 1 || !cas[0].Equal(ca.Cert) {
		t.Fatalf("CACerts returned %d certificates, want the mock CA", len(cas))
	}

	// estserver accepts any Basic credentials (it checks them only on
	// /healthcheck), so the token is carried but not judged.
	key, csr := newCSR(t, "dev-1")
	cert, err := c.Enroll(ctx, "dev-1", "any-token", csr)
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	if cert.Subject.CommonName != "dev-1" {
		t.Errorf("CN = %q, want dev-1", cert.Subject.CommonName)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: poolOf(ca.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not verify: %v", err)
	}

	// Its reenroll wants the CSR's subject to equal the certificate's.
	_, csr2 := newCSR(t, "dev-1")
	if _, err := c.Reenroll(ctx, tlsCertOf(t, cert, key), csr2); err != nil {
		t.Errorf("Reenroll: %v", err)
	}

	// Its refusals, reached through an EST label, read as ours do.
	_, csrForbidden := newCSR(t, "Trigger Error Forbidden")
	lc := *c
	lc.URL = "https://" + addr + PathPrefix + "/triggererrors"
	_, err = lc.Enroll(ctx, "dev-1", "any-token", csrForbidden)
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "request forbidden by the server: 403 triggered forbidden response") {
		t.Errorf("triggered 403: err = %v", err)
	}
}

// TestInteropGlobalsignClientVsHandler runs estclient against our handler.
func TestInteropGlobalsignClientVsHandler(t *testing.T) {
	bin := globalsignBinaries(t)
	f := newFixture(t, map[string]string{"dev-7": "tok-7"})
	dir := t.TempDir()
	host := strings.TrimPrefix(f.srv.URL, "https://")
	caPath := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caPath, f.auth.ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	key, csr := newCSR(t, "dev-7")
	csrPath := filepath.Join(dir, "dev-7.csr")
	keyPath := filepath.Join(dir, "dev-7.key")
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(csrPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	estclient := func(args ...string) ([]byte, error) {
		args = append(args, "-server", host, "-explicit", caPath)
		cmd := exec.CommandContext(t.Context(), filepath.Join(bin, "estclient"), args...)
		return cmd.CombinedOutput()
	}

	out, err := estclient("cacerts")
	if err != nil {
		t.Fatalf("estclient cacerts: %v\n%s", err, out)
	}
	if got := pemCerts(t, out); len(got) != 1 || !got[0].Equal(f.auth.ca.Cert) {
		t.Fatalf("estclient cacerts printed %d certificates, want the fleet CA", len(got))
	}

	out, err = estclient("enroll", "-user", "dev-7", "-pass", "wrong-tok-7", "-csr", csrPath)
	if err == nil || !strings.Contains(string(out), "unknown device or wrong token") || strings.Contains(string(out), "wrong-tok-7") {
		t.Errorf("estclient enroll with a wrong token: err = %v, output %q; want our refusal", err, out)
	}

	out, err = estclient("enroll", "-user", "dev-7", "-pass", "tok-7", "-csr", csrPath)
	if err != nil {
		t.Fatalf("estclient enroll: %v\n%s", err, out)
	}
	certs := pemCerts(t, out)
	if len(certs) != 1 || certs[0].Subject.CommonName != "dev-7" || matchKey(certs, key.Public()) == nil {
		t.Fatalf("estclient enroll printed %d certificates, want one for dev-7's key", len(certs))
	}
	certPath := filepath.Join(dir, "dev-7.crt")
	if err := os.WriteFile(certPath, out, 0o644); err != nil {
		t.Fatal(err)
	}

	out, err = estclient("reenroll", "-certs", certPath, "-key", keyPath)
	if err != nil {
		t.Fatalf("estclient reenroll: %v\n%s", err, out)
	}
	if got := pemCerts(t, out); len(got) != 1 || got[0].Subject.CommonName != "dev-7" || got[0].Equal(certs[0]) {
		t.Fatalf("estclient reenroll printed %d certificates, want a new one for dev-7", len(got))
	}
}

func pemCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return certs
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("parse PEM certificate: %v", err)
		}
		certs = append(certs, c)
	}
}

// freeAddr returns a 127.0.0.1 address nothing listens on; estserver takes
// an address, not a listener, so there is a small window for a clash.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess runs a server binary until the test ends and returns once
// addr accepts TLS connections. The process gives no readiness signal, so
// the address is polled.
func startProcess(t *testing.T, addr, path string, args ...string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before listening: %v\n%s", filepath.Base(path), err, stderr.String())
		case <-deadline:
			t.Fatalf("%s not listening on %s after 10 s\n%s", filepath.Base(path), addr, stderr.String())
		case <-tick.C:
		}
	}
}
