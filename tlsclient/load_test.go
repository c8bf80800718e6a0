package tlsclient

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/pki"
)

// loadFixture is a fleet CA, a good device certificate, and a fixed clock
// inside both validity periods.
type loadFixture struct {
	dir   string
	ca    *pki.CA
	now   time.Time
	files Files
}

func newLoadFixture(t *testing.T) *loadFixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("Fleet CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	fx := &loadFixture{dir: dir, ca: ca, now: ca.Cert.NotBefore.Add(30 * 24 * time.Hour)}
	fx.files.CA = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(fx.files.CA, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	fx.files.Cert, fx.files.Key = fx.issue(t, fx.ca, "dev1", pki.Template{CN: "dev1", Client: true})
	return fx
}

// issue writes name.crt/name.key for tmpl from ca; an unset validity is the
// day around fx.now.
func (fx *loadFixture) issue(t *testing.T, ca *pki.CA, name string, tmpl pki.Template) (cert, key string) {
	t.Helper()
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = fx.now.Add(-12 * time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = fx.now.Add(12 * time.Hour)
	}
	p, err := ca.Issue(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err = p.WriteFiles(fx.dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func (fx *loadFixture) write(t *testing.T, name, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(fx.dir, name)
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

func TestLoadAccepts(t *testing.T) {
	fx := newLoadFixture(t)
	c, err := Load(fx.files, fx.now)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Cert.Leaf == nil || c.Cert.Leaf.Subject.CommonName != "dev1" {
		t.Errorf("Leaf = %v, want CN dev1", c.Cert.Leaf)
	}
	if len(c.Cert.Certificate) != 1 || c.Cert.PrivateKey == nil {
		t.Errorf("Certificate has %d DER blocks and key %T", len(c.Cert.Certificate), c.Cert.PrivateKey)
	}
	if c.Files != fx.files {
		t.Errorf("Files = %+v, want %+v", c.Files, fx.files)
	}
	opts := x509.VerifyOptions{Roots: c.Roots, CurrentTime: fx.now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := c.Cert.Leaf.Verify(opts); err != nil {
		t.Errorf("Roots do not verify the leaf: %v", err)
	}
}

func TestLoadAcceptsIntermediateInCertFile(t *testing.T) {
	fx := newLoadFixture(t)
	// pki's CAs forbid intermediates (MaxPathLenZero); make a root that allows one.
	root := newCA(t, nil, "Fleet Root CA")
	rootPath := fx.write(t, "root.crt", string(root.CertPEM), 0o644)
	inter := newCA(t, root, "Fleet Issuing CA")
	leaf, err := inter.Issue(pki.Template{CN: "dev2", Client: true, NotBefore: fx.now.Add(-time.Hour), NotAfter: fx.now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, err := leaf.WriteFiles(fx.dir, "dev2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Files{CA: rootPath, Cert: certPath, Key: keyPath}, fx.now); !errors.Is(err, ErrCredentials) {
		t.Fatalf("Load without the intermediate = %v, want a refusal", err)
	}
	chainPath := fx.write(t, "dev2-chain.crt", string(leaf.CertPEM)+string(inter.CertPEM), 0o644)
	c, err := Load(Files{CA: rootPath, Cert: chainPath, Key: keyPath}, fx.now)
	if err != nil {
		t.Fatalf("Load with the intermediate: %v", err)
	}
	if len(c.Cert.Certificate) != 2 {
		t.Errorf("Certificate has %d DER blocks, want leaf and intermediate", len(c.Cert.Certificate))
	}
}

// newCA makes a CA signed by parent, or a self-signed one if parent is nil,
// that may sign intermediates.
func newCA(t *testing.T, parent *pki.CA, cn string) *pki.CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	parentCert, parentKey := tmpl, crypto.Signer(key)
	if parent != nil {
		parentCert, parentKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pki.CA{Pair: pki.Pair{Cert: cert, Key: key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}}
}

func TestLoadRefuses(t *testing.T) {
	fx := newLoadFixture(t)
	other, err := pki.NewCA("Other CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(fx.dir, "missing.pem")
	_, otherKey := fx.issue(t, fx.ca, "other", pki.Template{CN: "other", Client: true})
	expiredCert, expiredKey := fx.issue(t, fx.ca, "expired", pki.Template{CN: "old", Client: true,
		NotBefore: fx.now.Add(-48 * time.Hour), NotAfter: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	futureCert, futureKey := fx.issue(t, fx.ca, "future", pki.Template{CN: "new", Client: true,
		NotBefore: fx.now.Add(24 * time.Hour), NotAfter: fx.now.Add(48 * time.Hour)})
	weakCert, weakKey := fx.issue(t, fx.ca, "weak", pki.Template{CN: "weak", Client: true, RSABits: 1024})
	foreignCert, foreignKey := fx.issue(t, other, "foreign", pki.Template{CN: "dev1", Client: true})
	serverCert, serverKey := fx.issue(t, fx.ca, "serveronly", pki.Template{CN: "srv", Server: true})
	openKey := fx.write(t, "open.key", mustRead(t, fx.files.Key), 0o644)
	groupKey := fx.write(t, "group.key", mustRead(t, fx.files.Key), 0o640)
	notPEM := fx.write(t, "notpem.crt", "this is not a certificate\n", 0o644)
	onlyKeyPEM := fx.write(t, "keyonly.crt", mustRead(t, fx.files.Key), 0o644)
	badKey := fx.write(t, "bad.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0o600)
	noKey := fx.write(t, "nokey.key", mustRead(t, fx.files.Cert), 0o600)
	encKey := fx.write(t, "enc.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", 0o600)

	with := func(mod func(*Files)) Files {
		f := fx.files
		mod(&f)
		return f
	}
	tests := []struct {
		name  string
		files Files
		want  []string // all must appear in the message
		is    error    // also wrapped, besides ErrCredentials
	}{
		{"ca missing", with(func(f *Files) { f.CA = missing }), []string{"tls.ca", missing, "does not exist"}, fs.ErrNotExist},
		{"cert missing", with(func(f *Files) { f.Cert = missing }), []string{"tls.cert", missing, "does not exist"}, fs.ErrNotExist},
		{"key missing", with(func(f *Files) { f.Key = missing }), []string{"tls.key", missing, "does not exist"}, fs.ErrNotExist},
		{"key unset", with(func(f *Files) { f.Key = "" }), []string{"tls.key is not set"}, nil},
		{"ca is a directory", with(func(f *Files) { f.CA = fx.dir }), []string{"tls.ca", fx.dir, "cannot be read"}, nil},
		{"key world-readable", with(func(f *Files) { f.Key = openKey }), []string{"tls.key", "mode 0644", "chmod 600 " + openKey}, nil},
		{"key group-readable", with(func(f *Files) { f.Key = groupKey }), []string{"mode 0640", "chmod 600 " + groupKey}, nil},
		{"ca not PEM", with(func(f *Files) { f.CA = notPEM }), []string{"tls.ca", notPEM, "no PEM certificate"}, nil},
		{"cert holds a key", with(func(f *Files) { f.Cert = onlyKeyPEM }), []string{"tls.cert", onlyKeyPEM, "no PEM certificate"}, nil},
		{"key does not parse", with(func(f *Files) { f.Key = badKey }), []string{"tls.key", badKey, "does not parse"}, nil},
		{"key file holds a certificate", with(func(f *Files) { f.Key = noKey }), []string{"tls.key", noKey, "no PEM private key"}, nil},
		{"key encrypted", with(func(f *Files) { f.Key = encKey }), []string{"tls.key", encKey, "passphrase", "openssl pkey"}, nil},
		{"key of another certificate", with(func(f *Files) { f.Key = otherKey }),
			[]string{"tls.key", otherKey, "does not match", fx.files.Cert}, nil},
		{"cert expired", Files{CA: fx.files.CA, Cert: expiredCert, Key: expiredKey},
			[]string{"tls.cert", expiredCert, "expired on 2026-01-02T03:04:05Z"}, nil},
		{"cert not yet valid", Files{CA: fx.files.CA, Cert: futureCert, Key: futureKey},
			[]string{"tls.cert", futureCert, "not valid until " + fx.now.Add(24*time.Hour).UTC().Format(time.RFC3339), "clock"}, nil},
		{"RSA 1024", Files{CA: fx.files.CA, Cert: weakCert, Key: weakKey},
			[]string{"tls.cert", weakCert, "1024-bit RSA", "2048", "ECDSA P-256"}, nil},
		{"cert from another CA", Files{CA: fx.files.CA, Cert: foreignCert, Key: foreignKey},
			[]string{"tls.cert", foreignCert, "not signed by a CA in tls.ca " + fx.files.CA, "Other CA", `"unknown CA"`}, nil},
		{"cert for servers only", Files{CA: fx.files.CA, Cert: serverCert, Key: serverKey},
			[]string{"tls.cert", serverCert, "client authentication", "clientAuth"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.files, fx.now)
			if err == nil {
				t.Fatalf("Load = %v, want an error", c)
			}
			if !errors.Is(err, ErrCredentials) {
				t.Errorf("Load error %q does not wrap ErrCredentials", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Load error %q does not wrap %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error = %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
