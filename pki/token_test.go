package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/testexec"
)

func TestTokenID(t *testing.T) {
	tests := []struct {
		tok, id string
		ok      bool
	}{
		{"dev1.abc", "dev1", true},
		{"kitchen.01.AbC-_x", "kitchen.01", true},
		{"dev1.", "", false},
		{".abc", "", false},
		{"nodot", "", false},
		{"bad id.abc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		id, ok := TokenID(tt.tok)
		if id != tt.id || ok != tt.ok {
			t.Errorf("TokenID(%q) = %q, %v; want %q, %v", tt.tok, id, ok, tt.id, tt.ok)
		}
	}
}

func TestNewToken(t *testing.T) {
	d := newDir(t)
	tok, err := d.NewToken("kitchen.01", 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := TokenID(tok); !ok || id != "kitchen.01" {
		t.Errorf("TokenID(%q) = %q, %v", tok, id, ok)
	}
	secret := tok[strings.LastIndexByte(tok, '.')+1:]
	if len(secret) != 43 || strings.ContainsAny(secret, ".=+/") {
		t.Errorf("secret %q: want 43 base64url characters", secret)
	}
	data, _ := os.ReadFile(d.file(IndexFile))
	if strings.Contains(string(data), secret) {
		t.Error("index.json holds the token's secret")
	}
	if !strings.Contains(string(data), tokenHash(tok)) {
		t.Error("index.json lacks the token's SHA-256")
	}
	_, err = d.NewToken("bad id", 0, t0)
	wantErr(t, err, nil, `device id "bad id"`)
	_, err = d.NewToken("dev1", -time.Hour, t0)
	wantErr(t, err, nil, "--ttl -1h0m0s")
}

func TestEnrollToken(t *testing.T) {
	d := newDir(t)
	tok, err := d.NewToken("dev1", time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := d.NewToken("dev2", time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}

	// Refusals before the good attempt: none may consume the token.
	refusals := []struct {
		name     string
		id, tok  string
		csr      *x509.CertificateRequest
		now      time.Time
		sentinel error
		want     string
	}{
		{"unknown", "dev1", "dev1.AAAA", csrCN(t, "dev1"), t0, ErrToken, "not recognised"},
		{"secret of another id", "dev1", "dev1" + other[strings.IndexByte(other, '.'):], csrCN(t, "dev1"), t0, ErrToken, "not recognised"},
		{"wrong id", "dev2", tok, csrCN(t, "dev2"), t0, ErrToken, `made for device "dev1", not "dev2"`},
		{"expired", "dev1", tok, csrCN(t, "dev1"), t0.Add(time.Hour), ErrToken, "expired at 2026-03-01T13:00:00Z"},
		{"CSR for another CN", "dev1", tok, csrCN(t, "dev9"), t0, ErrPolicy, `CN is "dev9", want the device id "dev1"`},
		{"no CSR", "dev1", tok, nil, t0, ErrPolicy, "no certificate request"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Enroll(tt.id, tt.tok, tt.csr, 0, tt.now)
			wantErr(t, err, tt.sentinel, tt.want)
			if strings.Contains(err.Error(), tt.tok[strings.LastIndexByte(tt.tok, '.')+1:]) {
				t.Errorf("error %q reveals the token", err)
			}
		})
	}

	now := t0.Add(30 * time.Minute)
	c, err := d.Enroll("dev1", tok, csrCN(t, "dev1"), 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "dev1" || !c.NotAfter.Equal(now.Add(DefaultEnrollDays*24*time.Hour)) {
		t.Errorf("cert CN %q NotAfter %v", c.Subject.CommonName, c.NotAfter)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("EKU %v, want clientAuth only", c.ExtKeyUsage)
	}
	mustVerify(t, d, c, now)
	if ext := opensslExt(t, c); !strings.Contains(ext, "TLS Web Client Authentication") || strings.Contains(ext, "Server") {
		t.Errorf("openssl extensions %q", ext)
	}

	_, err = d.Enroll("dev1", tok, csrCN(t, "dev1"), 0, now.Add(time.Minute))
	wantErr(t, err, ErrToken, "already used at 2026-03-01T12:30:00Z")

	recs, _ := d.List()
	if len(recs) != 1 || recs[0].Via != ViaEnroll || recs[0].CN != "dev1" || recs[0].Serial.Cmp(c.SerialNumber) != 0 {
		t.Errorf("List = %+v", recs)
	}

	t.Run("days", func(t *testing.T) {
		tok, _ := d.NewToken("dev3", 0, t0)
		c, err := d.Enroll("dev3", tok, csrCN(t, "dev3"), 7, t0)
		if err != nil || !c.NotAfter.Equal(t0.Add(7*24*time.Hour)) {
			t.Errorf("NotAfter %v, %v", c.NotAfter, err)
		}
	})
	t.Run("pruned after retention", func(t *testing.T) {
		late := t0.Add(time.Hour + TokenRetention + time.Minute)
		if _, err := d.NewToken("dev4", 0, late); err != nil {
			t.Fatal(err)
		}
		_, err := d.Enroll("dev1", tok, csrCN(t, "dev1"), 0, late)
		wantErr(t, err, ErrToken, "not recognised")
	})
}

// TestEnrollPolicy runs every request refusal, then enrolls with the same
// token: a refusal must not consume it.
func TestEnrollPolicy(t *testing.T) {
	d := newDir(t)
	tok, err := d.NewToken("dev1", 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ext := func(oid asn1.ObjectIdentifier, v any) pkix.Extension {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return pkix.Extension{Id: oid, Value: b}
	}
	name := pkix.Name{CommonName: "dev1"}
	badSig := csrCN(t, "dev1")
	badSig.Signature = append([]byte(nil), badSig.Signature...)
	badSig.Signature[len(badSig.Signature)-3] ^= 0xff

	tests := []struct {
		name string
		id   string
		csr  *x509.CertificateRequest
		want string
	}{
		{"bad signature", "dev1", badSig, "signature does not verify"},
		{"CN differs", "dev1", csrCN(t, "dev2"), `CN is "dev2"`},
		{"invalid id", "dev 1", csrCN(t, "dev 1"), `device id "dev 1"`},
		{"RSA-1024", "dev1", newCSR(t, rsa1024, &x509.CertificateRequest{Subject: name}), "RSA-1024 key is too weak"},
		{"P-224", "dev1", newCSR(t, p224, &x509.CertificateRequest{Subject: name}), "curve P-224"},
		{"Ed25519", "dev1", newCSR(t, ed, &x509.CertificateRequest{Subject: name}), "ed25519.PublicKey keys are not accepted"},
		{"serverAuth requested", "dev1", newCSR(t, nil, &x509.CertificateRequest{Subject: name, ExtraExtensions: []pkix.Extension{
			ext(oidExtKeyUsage, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 2}, oidEKUServerAuth})}}), "extendedKeyUsage serverAuth"},
		{"anyEKU requested", "dev1", newCSR(t, nil, &x509.CertificateRequest{Subject: name, ExtraExtensions: []pkix.Extension{
			ext(oidExtKeyUsage, []asn1.ObjectIdentifier{oidEKUAnyExtKeyUsage})}}), "anyExtendedKeyUsage"},
		{"malformed EKU", "dev1", newCSR(t, nil, &x509.CertificateRequest{Subject: name, ExtraExtensions: []pkix.Extension{
			{Id: oidExtKeyUsage, Value: []byte{1, 2, 3}}}}), "malformed extendedKeyUsage"},
		{"CA requested", "dev1", newCSR(t, nil, &x509.CertificateRequest{Subject: name, ExtraExtensions: []pkix.Extension{
			ext(oidBasicConstraints, struct{ IsCA bool }{true})}}), "asks to be a CA"},
		{"bad DNS SAN", "dev1", newCSR(t, nil, &x509.CertificateRequest{Subject: name, DNSNames: []string{"bad name"}}), `SAN "bad name"`},
		{"email SAN", "dev1", newCSR(t, nil, &x509.CertificateRequest{Subject: name, EmailAddresses: []string{"a@b.c"}}), "email or URI"},
		{"URI SAN", "dev1", newCSR(t, nil, &x509.CertificateRequest{Subject: name, URIs: []*url.URL{{Scheme: "spiffe", Host: "x"}}}), "email or URI"},
		{"negative days", "dev1", csrCN(t, "dev1"), "validity of -1 days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			days := 0
			if strings.Contains(tt.name, "days") {
				days = -1
			}
			_, err := d.Enroll(tt.id, tok, tt.csr, days, t0)
			wantErr(t, err, ErrPolicy, tt.want)
		})
	}

	// Allowed: SANs that are host names or IPs, and a clientAuth request.
	good := newCSR(t, nil, &x509.CertificateRequest{Subject: name, DNSNames: []string{"dev1.lan"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")},
		ExtraExtensions: []pkix.Extension{ext(oidExtKeyUsage, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 2}})}})
	c, err := d.Enroll("dev1", tok, good, 0, t0)
	if err != nil {
		t.Fatalf("enroll after refusals: %v (a refusal consumed the token?)", err)
	}
	mustVerify(t, d, c, t0)
	if ext := opensslExt(t, c); !strings.Contains(ext, "DNS:dev1.lan") || !strings.Contains(ext, "IP Address:10.0.0.7") || strings.Contains(ext, "Server") {
		t.Errorf("openssl extensions %q", ext)
	}
}

func TestReenroll(t *testing.T) {
	d := newDir(t)
	tok, _ := d.NewToken("dev1", 0, t0)
	cur, err := d.Enroll("dev1", tok, csrCN(t, "dev1"), 30, t0)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(20 * 24 * time.Hour)
	next, err := d.Reenroll(cur, csrCN(t, "dev1"), 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if next.Subject.CommonName != "dev1" || next.SerialNumber.Cmp(cur.SerialNumber) == 0 || !next.NotAfter.Equal(now.Add(DefaultEnrollDays*24*time.Hour)) {
		t.Errorf("renewed cert CN %q serial %v NotAfter %v", next.Subject.CommonName, next.SerialNumber, next.NotAfter)
	}
	mustVerify(t, d, next, now)
	// The renewed certificate renews in turn.
	if _, err := d.Reenroll(next, csrCN(t, "dev1"), 0, now); err != nil {
		t.Errorf("reenroll with a renewed cert: %v", err)
	}

	otherDir := newDir(t)
	otok, _ := otherDir.NewToken("dev1", 0, t0)
	foreign, err := otherDir.Enroll("dev1", otok, csrCN(t, "dev1"), 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	unindexed, err := d.CA.Issue(Template{CN: "dev1", Client: true, NotBefore: t0, NotAfter: t0.Add(time.Hour * 24)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := d.Issue(IssueOptions{CN: "dev5", Server: true}, t0)
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ := d.NewToken("dev2", 0, t0)
	revoked, err := d.Enroll("dev2", tok2, csrCN(t, "dev2"), 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Revoke("dev2", nil, t0); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		cur      *x509.Certificate
		csr      *x509.CertificateRequest
		now      time.Time
		sentinel error
		want     string
	}{
		{"CN change", cur, csrCN(t, "dev9"), now, ErrPolicy, `CN is "dev9", want the device id "dev1"`},
		{"revoked", revoked, csrCN(t, "dev2"), now, ErrRevoked, "was revoked at"},
		{"revoked is policy", revoked, csrCN(t, "dev2"), now, ErrPolicy, "was revoked at"},
		{"foreign", foreign, csrCN(t, "dev1"), now, ErrPolicy, "does not verify against this CA"},
		{"not in index", unindexed.Cert, csrCN(t, "dev1"), t0.Add(time.Hour), ErrNotFound, "not in this CA's index"},
		{"expired", cur, csrCN(t, "dev1"), t0.Add(31 * 24 * time.Hour), ErrPolicy, "expired at"},
		{"server cert", srv.Cert, csrCN(t, "dev5"), now, ErrPolicy, "not a device (clientAuth) certificate"},
		{"bad request", cur, newCSR(t, nil, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev1"}, DNSNames: []string{"a b"}}), now, ErrPolicy, `SAN "a b"`},
		{"nil", nil, csrCN(t, "dev1"), now, ErrPolicy, "no current certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Reenroll(tt.cur, tt.csr, 0, tt.now)
			wantErr(t, err, tt.sentinel, tt.want)
		})
	}
}

// TestConcurrentNewToken has goroutines on two Dir values and two other
// processes make tokens at once; the flock must make every one land.
func TestConcurrentNewToken(t *testing.T) {
	if dir := os.Getenv("PKI_TEST_TOKEN_DIR"); dir != "" {
		return // the helper-process half runs in TestHelperMakeTokens
	}
	d := newDir(t)
	d2, err := OpenDir(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	const perG, goroutines, procs, perProc = 5, 8, 2, 10
	var (
		mu   sync.Mutex
		toks []string
		wg   sync.WaitGroup
	)
	var cmds []*exec.Cmd
	for p := range procs {
		self, err := testexec.Self()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(self[0], append(self[1:], "-test.run=^TestHelperMakeTokens$", "-test.count=1")...)
		cmd.Env = append(os.Environ(), "PKI_TEST_TOKEN_DIR="+d.Path, fmt.Sprintf("PKI_TEST_TOKEN_N=%d", perProc), fmt.Sprintf("PKI_TEST_TOKEN_ID=proc%d", p))
		cmds = append(cmds, cmd)
	}
	outs := make([][]byte, procs)
	for i, cmd := range cmds {
		wg.Go(func() {
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("helper process: %v\n%s", err, out)
			}
			outs[i] = out
		})
	}
	for g := range goroutines {
		dd := d
		if g%2 == 1 {
			dd = d2
		}
		wg.Go(func() {
			for i := range perG {
				tok, err := dd.NewToken(fmt.Sprintf("g%d-%d", g, i), 0, t0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				toks = append(toks, tok)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, out := range outs {
		for _, line := range strings.Fields(string(out)) {
			if strings.HasPrefix(line, "TOKEN=") {
				toks = append(toks, strings.TrimPrefix(line, "TOKEN="))
			}
		}
	}
	if want := goroutines*perG + procs*perProc; len(toks) != want {
		t.Fatalf("made %d tokens, want %d", len(toks), want)
	}
	data, _ := os.ReadFile(d.file(IndexFile))
	ix, err := parseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Tokens) != len(toks) {
		t.Errorf("index holds %d tokens, %d were made: lost updates", len(ix.Tokens), len(toks))
	}
	for _, tok := range toks {
		if !strings.Contains(string(data), tokenHash(tok)) {
			t.Errorf("token for %s lost", strings.Split(tok, ".")[0])
		}
	}
}

// TestHelperMakeTokens is the other process of TestConcurrentNewToken.
func TestHelperMakeTokens(t *testing.T) {
	dir := os.Getenv("PKI_TEST_TOKEN_DIR")
	if dir == "" {
		t.Skip("helper process for TestConcurrentNewToken")
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(os.Getenv("PKI_TEST_TOKEN_N"), &n)
	for i := range n {
		tok, err := d.NewToken(fmt.Sprintf("%s-%d", os.Getenv("PKI_TEST_TOKEN_ID"), i), 0, t0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("TOKEN=" + tok)
	}
}

func TestLockTimeout(t *testing.T) {
	d := newDir(t)
	unlock, err := lockFile(d.file(LockFile), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := OpenDir(d.Path) // reads without the lock
	if err != nil {
		t.Fatal(err)
	}
	d2.LockTimeout = 30 * time.Millisecond
	_, err = d2.NewToken("dev1", 0, t0)
	wantErr(t, err, ErrLocked, "still locked after 30ms")
	unlock()
	if _, err := d2.NewToken("dev1", 0, t0); err != nil {
		t.Errorf("after unlock: %v", err)
	}
}
