package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeagent/agent/internal/atomicfile"
)

// Files of a CA directory.
const (
	CertFile  = "ca.crt"     // the CA certificate, PEM, 0644: give it to brokers and devices
	KeyFile   = "ca.key"     // the CA private key, PKCS#8 PEM, 0600
	CRLFile   = "ca.crl"     // the current CRL, PEM, 0644: Mosquitto's crlfile
	IndexFile = "index.json" // what the CA issued and the tokens outstanding, 0600
	LockFile  = "index.lock" // flocked across every read-modify-write of the directory
)

// Defaults of the directory CA.
const (
	DefaultCADays     = 3650
	DefaultCACN       = "Edge Fleet CA"
	DefaultEnrollDays = 90
	DefaultTokenTTL   = 24 * time.Hour
	// TokenRetention is how long a token is remembered after it expires,
	// so that a late attempt learns it expired rather than "unknown".
	TokenRetention = 7 * 24 * time.Hour
	// DefaultLockTimeout is how long an operation waits for another
	// process holding the directory.
	DefaultLockTimeout = 10 * time.Second
)

// Sentinel errors of the directory CA; check them with errors.Is.
var (
	// ErrExists: InitDir would replace an existing CA without Force.
	ErrExists = errors.New("CA already exists")
	// ErrToken: an enrollment token is unknown, for another device, used or
	// expired.
	ErrToken = errors.New("enrollment token refused")
	// ErrPolicy: a request or certificate breaks the CA's policy (key too
	// weak, bad name, CN mismatch, foreign, revoked or expired certificate).
	ErrPolicy = errors.New("refused by CA policy")
	// ErrNotFound: no issued certificate has that serial or CN.
	ErrNotFound = errors.New("not found")
	// ErrRevoked: the certificate is already revoked.
	ErrRevoked = errors.New("already revoked")
	// ErrLocked: another process held the directory longer than the lock
	// timeout.
	ErrLocked = errors.New("CA directory locked")
)

// KeyType names a private key kind for ParseKeyType, InitOptions and
// IssueOptions.
type KeyType string

// Key types. The empty KeyType means KeyEC.
const (
	KeyEC      KeyType = "ec" // ECDSA P-256: small, fast, understood by every Mosquitto
	KeyRSA2048 KeyType = "rsa2048"
	KeyRSA3072 KeyType = "rsa3072"
	KeyRSA4096 KeyType = "rsa4096"
)

// ParseKeyType reads a --key value: "ec" (the default, also for ""),
// "rsa2048", "rsa3072" or "rsa4096". RSA below 2048 bits is refused with
// ErrPolicy.
func ParseKeyType(s string) (KeyType, error) {
	k := KeyType(strings.ToLower(strings.TrimSpace(s)))
	if _, err := k.rsaBits(); err != nil {
		return "", err
	}
	if k == "" {
		k = KeyEC
	}
	return k, nil
}

// NewKey generates a private key of type k.
func NewKey(k KeyType) (crypto.Signer, error) {
	bits, err := k.rsaBits()
	if err != nil {
		return nil, err
	}
	return newKey(bits)
}

// KeyTypeOf names the type of key, so a renewal can make a key like the
// one it replaces: KeyEC for any ECDSA key, the nearest RSA type not
// weaker for an RSA key (rsa4096 above 4096 bits), "" (the default,
// KeyEC) for anything else.
func KeyTypeOf(key crypto.PrivateKey) KeyType {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return KeyEC
	case *rsa.PrivateKey:
		switch n := k.N.BitLen(); {
		case n <= 2048:
			return KeyRSA2048
		case n <= 3072:
			return KeyRSA3072
		default:
			return KeyRSA4096
		}
	}
	return ""
}

// MarshalKey encodes key as PKCS#8 PEM ("PRIVATE KEY"), the form KeyFile
// and Pair.KeyPEM use.
func MarshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WritePair writes prefix.crt (0644) and prefix.key (0600), as `agent ca
// issue --out PREFIX` does; see Pair.WriteFiles.
func WritePair(p *Pair, prefix string) error {
	_, _, err := p.WriteFiles(filepath.Dir(prefix), filepath.Base(prefix))
	return err
}

// rsaBits is the Template.RSABits for k: 0 for ECDSA.
func (k KeyType) rsaBits() (int, error) {
	switch k {
	case "", KeyEC:
		return 0, nil
	case KeyRSA2048, KeyRSA3072, KeyRSA4096:
		n, _ := strconv.Atoi(string(k[3:]))
		return n, nil
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(string(k), "rsa")); err == nil && strings.HasPrefix(string(k), "rsa") && n < MinRSABits {
		return 0, kindf(ErrPolicy, "--key %s: RSA-%d is too weak: use ec (ECDSA P-256, the default) or rsa2048/rsa4096", k, n)
	}
	return 0, fmt.Errorf("--key %q: unknown key type: use ec (the default), rsa2048, rsa3072 or rsa4096", string(k))
}

// Dir is a certificate authority kept in a directory: CertFile, KeyFile,
// CRLFile and IndexFile. Every change holds an flock on LockFile and
// re-reads the index under it, so the `agent ca` commands and an
// enrollment server can share one directory. A Dir is safe for concurrent
// use.
type Dir struct {
	Path string // the directory
	CA   *CA    // loaded from CertFile and KeyFile
	// LockTimeout bounds the wait for another holder of the directory;
	// zero means DefaultLockTimeout.
	LockTimeout time.Duration

	mu sync.Mutex // spares goroutines of one Dir polling the flock
}

// InitOptions describe a new CA directory.
type InitOptions struct {
	CN    string  // default DefaultCACN
	Days  int     // default DefaultCADays
	Key   KeyType // default KeyEC
	Force bool    // replace an existing CA (every certificate it issued stops verifying)
}

// InitDir makes a CA in dir (created 0700 if missing): CertFile, KeyFile
// (0600), an empty CRLFile, so a broker's crlfile exists from the start,
// and IndexFile. Without o.Force it refuses, with ErrExists, when any of
// them is already there.
func InitDir(dir string, o InitOptions, now time.Time) (*Dir, error) {
	bits, err := o.Key.rsaBits()
	if err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	if o.CN == "" {
		o.CN = DefaultCACN
	}
	if o.Days == 0 {
		o.Days = DefaultCADays
	}
	if o.Days < 0 {
		return nil, fmt.Errorf("ca init: --days %d: must be positive", o.Days)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	d := &Dir{Path: dir}
	unlock, err := d.lock()
	if err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	defer unlock()
	if !o.Force {
		for _, name := range []string{KeyFile, CertFile, IndexFile, CRLFile} {
			p := d.file(name)
			if _, err := os.Lstat(p); err == nil {
				return nil, kindf(ErrExists, "ca init: %s already exists; replacing the CA invalidates every certificate it issued: pass --force to do so anyway", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("ca init: %w", err)
			}
		}
	}
	ca, err := NewCAWith(CAOptions{CN: o.CN, RSABits: bits, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(days(o.Days))})
	if err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	d.CA = ca
	ix := &index{Version: indexVersion, CRLNumber: 1}
	crl, err := ca.SignCRL(nil, big.NewInt(ix.CRLNumber), now)
	if err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	data, err := ix.marshal()
	if err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	// Key first: a crash part-way leaves files that make the next init
	// refuse (or OpenDir name the mismatch), never a certificate whose key
	// is lost.
	var s atomicfile.Set
	defer s.Abort()
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{{KeyFile, ca.KeyPEM, 0o600}, {CertFile, ca.CertPEM, 0o644}, {IndexFile, data, 0o600}, {CRLFile, crl, 0o644}} {
		if err := s.Add(d.file(f.name), f.data, f.perm); err != nil {
			return nil, fmt.Errorf("ca init: %w", err)
		}
	}
	if err := s.Commit(); err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	return d, nil
}

// OpenDir loads the CA in dir. It refuses a KeyFile that others can read
// (naming the chmod that fixes it), a key that does not belong to the
// certificate, and a missing or damaged IndexFile.
func OpenDir(dir string) (*Dir, error) {
	d := &Dir{Path: dir}
	keyPath, certPath := d.file(KeyFile), d.file(CertFile)
	st, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("ca: %w: is %s a CA directory? Make one with `agent ca init --dir %s`", err, dir, dir)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("ca: %s is readable by others (mode %04o): run `chmod 600 %s`", keyPath, perm, keyPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", keyPath, err)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("ca: %w: restore the CA certificate beside its key", err)
	}
	cert, err := ParseCertFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("ca: %s is not a CA certificate (no CA:TRUE basic constraint or keyCertSign usage)", certPath)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("ca: %s does not belong to %s: restore the matching pair (or `agent ca init --force` for a new CA)", keyPath, certPath)
	}
	d.CA = &CA{Pair: Pair{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}}
	if _, err := d.loadIndex(); err != nil {
		return nil, err
	}
	return d, nil
}

// parseKey reads a PKCS#8 key as this package writes it, or the SEC 1 and
// PKCS#1 forms older openssl commands write.
func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key (an encrypted key must be decrypted first: `openssl pkey -in ca.key -out ca.key.plain`)")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted: decrypt it with `openssl pkey -in ca.key -out ca.key.plain` and keep the directory private instead")
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%T is not a signing key", k)
		}
		return s, nil
	}
}

func (d *Dir) file(name string) string { return filepath.Join(d.Path, name) }

func (d *Dir) lock() (unlock func(), err error) {
	d.mu.Lock()
	timeout := d.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	u, err := lockFile(d.file(LockFile), timeout)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	return func() { u(); d.mu.Unlock() }, nil
}

// loadIndex reads IndexFile; its errors name the file and the way out.
func (d *Dir) loadIndex() (*index, error) {
	p := d.file(IndexFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ca: %w: restore it from a backup; without it the CA forgets what it revoked", err)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	ix, err := parseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %v: repair it by hand or restore it from a backup (a leftover .%s.tmp-* beside it is an unfinished write, not a backup)", p, err, IndexFile)
	}
	return ix, nil
}

// update runs fn on the index under the directory lock and writes the
// index back, with the extra files fn returns, in one atomic set when fn
// reports a change. The index is re-read under the lock every time:
// another process may have changed it since the last call.
func (d *Dir) update(fn func(ix *index) (changed bool, extra map[string][]byte, err error)) error {
	unlock, err := d.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := d.checkCA(); err != nil {
		return err
	}
	d.removeStaleTemps()
	ix, err := d.loadIndex()
	if err != nil {
		return err
	}
	changed, extra, err := fn(ix)
	if err != nil || !changed {
		return err
	}
	data, err := ix.marshal()
	if err != nil {
		return fmt.Errorf("ca: encode index: %w", err)
	}
	var s atomicfile.Set
	defer s.Abort()
	// The index goes first: if a crash cuts between the renames, the index
	// is ahead of the CRL, and RefreshCRL notices by the CRL number.
	if err := s.Add(d.file(IndexFile), data, 0o600); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	for name, b := range extra {
		if err := s.Add(d.file(name), b, 0o644); err != nil {
			return fmt.Errorf("ca: %w", err)
		}
	}
	if err := s.Commit(); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

// checkCA refuses to sign with a CA that `ca init --force` has replaced
// since this Dir was opened: its certificates would land in the new CA's
// index and verify nowhere.
func (d *Dir) checkCA() error {
	now, err := os.ReadFile(d.file(CertFile))
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if !bytes.Equal(now, d.CA.CertPEM) {
		return fmt.Errorf("ca: %s changed since the directory was opened (`agent ca init --force`?): open it again", d.file(CertFile))
	}
	return nil
}

// removeStaleTemps deletes the temporary files of writes a crash cut
// short. Only a lock holder writes, so under the lock every one is stale.
func (d *Dir) removeStaleTemps() {
	for _, name := range []string{IndexFile, CRLFile, KeyFile, CertFile} {
		m, _ := filepath.Glob(filepath.Join(d.Path, "."+name+".tmp-*"))
		for _, p := range m {
			os.Remove(p)
		}
	}
}

// IssueOptions describe a certificate for Dir.Issue.
type IssueOptions struct {
	CN string
	// Server makes a broker certificate: serverAuth only, with CN also put
	// in the SANs (Go and modern OpenSSL ignore the CN). Otherwise the
	// certificate is a device's: clientAuth only, CN a valid device id.
	Server bool
	SANs   []string // DNS names and IP addresses
	Days   int      // default 365 for a server, DefaultEnrollDays for a device
	Key    KeyType  // default KeyEC
}

// Issue makes a key and a certificate and records it in the index.
func (d *Dir) Issue(o IssueOptions, now time.Time) (*Pair, error) {
	t := Template{CN: o.CN, Server: o.Server, Client: !o.Server}
	if o.CN != "" && sameNameAsCA(d.CA.Cert, o.CN) {
		return nil, kindf(ErrPolicy, "ca issue: --cn %q is the CA's own name: OpenSSL would take the certificate for self-signed and clients fail with \"unknown CA\"; name it after the host or device instead", o.CN)
	}
	if o.Server {
		if o.CN == "" {
			return nil, fmt.Errorf("ca issue: --cn is required: the broker's host name, e.g. --cn broker.example.lan")
		}
		if _, _, err := parseSAN(o.CN); err != nil {
			return nil, kindf(ErrPolicy, "ca issue: --cn %q: a server's CN is also its first SAN, so it must be the host name or IP clients dial: %v", o.CN, err)
		}
	} else if err := ValidDeviceID(o.CN); err != nil {
		return nil, kindf(ErrPolicy, "ca issue: --cn: %v (or pass --server for a broker certificate)", err)
	}
	sans := o.SANs
	if o.Server {
		sans = append([]string{o.CN}, sans...)
	}
	seen := map[string]bool{}
	for _, s := range sans {
		s = strings.TrimSpace(s)
		ip, name, err := parseSAN(s)
		if err != nil {
			return nil, kindf(ErrPolicy, "ca issue: --san %q: %v", s, err)
		}
		key := strings.ToLower(s)
		if ip != nil {
			key = ip.String()
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		if ip != nil {
			t.IPs = append(t.IPs, ip)
		} else {
			t.DNSNames = append(t.DNSNames, name)
		}
	}
	var err error
	if t.RSABits, err = o.Key.rsaBits(); err != nil {
		return nil, fmt.Errorf("ca issue: %w", err)
	}
	if o.Days < 0 {
		return nil, fmt.Errorf("ca issue: --days %d: must be positive", o.Days)
	}
	if o.Days == 0 {
		o.Days = DefaultEnrollDays
		if o.Server {
			o.Days = int(DefaultValidity / (24 * time.Hour))
		}
	}
	// Key generation (seconds for RSA-4096) happens outside the lock.
	key, err := NewKey(o.Key)
	if err != nil {
		return nil, fmt.Errorf("ca issue: %w", err)
	}
	var p *Pair
	err = d.update(func(ix *index) (bool, map[string][]byte, error) {
		var err error
		if p, err = d.sign(ix, key.Public(), t, o.Days, now); err != nil {
			return false, nil, fmt.Errorf("ca issue: %w", err)
		}
		ix.add(p, o.Server, ViaIssue)
		return true, nil, nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.addKey(key); err != nil {
		return nil, fmt.Errorf("ca issue: %w", err)
	}
	return p, nil
}

// sign issues t for pub, valid from a minute before now for days (cut to
// the CA's own expiry, past which nothing would verify anyway), with a
// serial the index has not seen.
func (d *Dir) sign(ix *index, pub crypto.PublicKey, t Template, validDays int, now time.Time) (*Pair, error) {
	ca := d.CA.Cert
	if !now.Before(ca.NotAfter) {
		return nil, fmt.Errorf("the CA certificate %s expired at %s: nothing it signs would verify; make a new CA and re-enroll the fleet", d.file(CertFile), ca.NotAfter.UTC().Format(time.RFC3339))
	}
	t.NotBefore = now.Add(-time.Minute)
	t.NotAfter = now.Add(days(validDays))
	if t.NotAfter.After(ca.NotAfter) {
		t.NotAfter = ca.NotAfter
	}
	for t.Serial == nil || ix.hasSerial(t.Serial) {
		t.Serial = serial()
	}
	return d.CA.issue(t, pub)
}

// kindError is an error that also matches a sentinel, without the
// sentinel's text in its message.
type kindError struct {
	err  error
	kind error
}

// Error is the message alone, without the sentinel's text.
func (e *kindError) Error() string { return e.err.Error() }

// Unwrap lets errors.Is and errors.As see both the cause and the sentinel.
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// kindf formats an error that errors.Is matches against kind.
func kindf(kind error, format string, args ...any) error {
	return &kindError{err: fmt.Errorf(format, args...), kind: kind}
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// Revoke marks revoked either every unrevoked certificate with CN id (a
// renewed device has several) or the one with serial, rewrites CRLFile,
// and returns the records it revoked. Pass id "" or serial nil for the
// one not used. Unknown id or serial: ErrNotFound; all already revoked:
// ErrRevoked.
func (d *Dir) Revoke(id string, serial *big.Int, now time.Time) ([]Record, error) {
	if (id == "") == (serial == nil) {
		return nil, errors.New("ca revoke: pass exactly one of --id and --serial")
	}
	what := "--id " + id
	if serial != nil {
		what = "--serial " + FormatSerial(serial)
	}
	var out []Record
	err := d.update(func(ix *index) (bool, map[string][]byte, error) {
		var match []*indexCert
		if serial != nil {
			if c := ix.cert(serial); c != nil {
				match = append(match, c)
			}
		} else {
			for i := range ix.Certs {
				if ix.Certs[i].CN == id {
					match = append(match, &ix.Certs[i])
				}
			}
		}
		if len(match) == 0 {
			return false, nil, kindf(ErrNotFound, "ca revoke: %s: no certificate issued by this CA has it (see `agent ca list --dir %s`)", what, d.Path)
		}
		for _, c := range match {
			if c.Revoked.IsZero() {
				c.Revoked = now.UTC()
				out = append(out, c.record())
			}
		}
		if len(out) == 0 {
			return false, nil, kindf(ErrRevoked, "ca revoke: %s: already revoked at %s", what, match[0].Revoked.Format(time.RFC3339))
		}
		crl, err := d.nextCRL(ix, now)
		if err != nil {
			return false, nil, fmt.Errorf("ca revoke: %w", err)
		}
		return true, map[string][]byte{CRLFile: crl}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// List returns every certificate the CA issued, in the order it issued
// them.
func (d *Dir) List() ([]Record, error) {
	var out []Record
	err := d.update(func(ix *index) (bool, map[string][]byte, error) {
		for _, c := range ix.Certs {
			out = append(out, c.record())
		}
		return false, nil, nil
	})
	// Index order is issuing order; the sort only matters for hand edits.
	slices.SortStableFunc(out, func(a, b Record) int { return a.NotBefore.Compare(b.NotBefore) })
	return out, err
}
