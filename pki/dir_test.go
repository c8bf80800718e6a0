package pki

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInitDir(t *testing.T) {
	d := newDir(t)
	for name, want := range map[string]os.FileMode{CertFile: 0o644, KeyFile: 0o600, CRLFile: 0o644, IndexFile: 0o600} {
		st, err := os.Stat(d.file(name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s mode %04o, want %04o", name, got, want)
		}
	}
	if st, _ := os.Stat(d.Path); st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %04o, want 0700", st.Mode().Perm())
	}
	c := d.CA.Cert
	if c.Subject.CommonName != "Test Fleet CA" || !c.IsCA {
		t.Errorf("CA subject %q IsCA %v", c.Subject, c.IsCA)
	}
	if want := t0.Add(DefaultCADays * 24 * time.Hour); !c.NotAfter.Equal(want) {
		t.Errorf("CA NotAfter %v, want %v", c.NotAfter, want)
	}
	_, crl, err := d.ReadCRL()
	if err != nil || len(crl.RevokedCertificateEntries) != 0 || crl.Number.Int64() != 1 {
		t.Errorf("initial CRL: %v, %+v", err, crl)
	}
	if recs, err := d.List(); err != nil || len(recs) != 0 {
		t.Errorf("List = %v, %v; want empty", recs, err)
	}
	if out, err := openssl(t, "crl", "-in", d.file(CRLFile), "-CAfile", d.file(CertFile), "-noout"); err != nil || !strings.Contains(out, "verify OK") {
		t.Errorf("openssl crl: %v\n%s", err, out)
	}

	t.Run("refuses overwrite", func(t *testing.T) {
		before, _ := os.ReadFile(d.file(KeyFile))
		_, err := InitDir(d.Path, InitOptions{}, t0)
		wantErr(t, err, ErrExists, "--force")
		after, _ := os.ReadFile(d.file(KeyFile))
		if string(before) != string(after) {
			t.Error("refused init changed ca.key")
		}
	})
	t.Run("refuses overwrite of a lone index", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, IndexFile), []byte("{}"), 0o600)
		_, err := InitDir(dir, InitOptions{}, t0)
		wantErr(t, err, ErrExists, IndexFile)
	})
	t.Run("force replaces", func(t *testing.T) {
		d2, err := InitDir(d.Path, InitOptions{Force: true, CN: "New CA", Days: 10}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if d2.CA.Cert.Equal(d.CA.Cert) || d2.CA.Cert.Subject.CommonName != "New CA" {
			t.Error("force did not make a new CA")
		}
		if want := t0.Add(10 * 24 * time.Hour); !d2.CA.Cert.NotAfter.Equal(want) {
			t.Errorf("NotAfter %v, want %v", d2.CA.Cert.NotAfter, want)
		}
		// d still holds the old CA: it must not sign into the new index.
		_, err = d.NewToken("dev1", 0, t0)
		wantErr(t, err, nil, "changed since the directory was opened")
		if _, err := OpenDir(d.Path); err != nil {
			t.Errorf("OpenDir after force: %v", err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		_, err := InitDir(t.TempDir(), InitOptions{Key: "rsa1024"}, t0)
		wantErr(t, err, ErrPolicy, "too weak")
		_, err = InitDir(t.TempDir(), InitOptions{Key: "dsa"}, t0)
		wantErr(t, err, nil, "unknown key type")
		_, err = InitDir(t.TempDir(), InitOptions{Days: -1}, t0)
		wantErr(t, err, nil, "--days -1")
	})
}

func TestOpenDir(t *testing.T) {
	other := newDir(t)
	tests := []struct {
		name   string
		damage func(d *Dir)
		want   string
	}{
		{"ok", func(d *Dir) {}, ""},
		{"key readable by others", func(d *Dir) { os.Chmod(d.file(KeyFile), 0o640) }, "is readable by others (mode 0640): run `chmod 600 "},
		{"no key", func(d *Dir) { os.Remove(d.file(KeyFile)) }, "agent ca init --dir"},
		{"no cert", func(d *Dir) { os.Remove(d.file(CertFile)) }, CertFile},
		{"foreign key", func(d *Dir) {
			k, _ := os.ReadFile(other.file(KeyFile))
			os.WriteFile(d.file(KeyFile), k, 0o600)
		}, "does not belong to"},
		{"garbage key", func(d *Dir) { os.WriteFile(d.file(KeyFile), []byte("hello"), 0o600) }, "no PEM private key"},
		{"no index", func(d *Dir) { os.Remove(d.file(IndexFile)) }, "restore it from a backup"},
		{"truncated index", func(d *Dir) {
			b, _ := os.ReadFile(d.file(IndexFile))
			os.WriteFile(d.file(IndexFile), b[:len(b)/2], 0o600)
		}, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDir(t)
			tt.damage(d)
			got, err := OpenDir(d.Path)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !got.CA.Cert.Equal(d.CA.Cert) {
					t.Error("opened another CA")
				}
				return
			}
			wantErr(t, err, nil, tt.want)
		})
	}
}

func TestIssue(t *testing.T) {
	d := newDir(t)
	tests := []struct {
		name    string
		o       IssueOptions
		wantEKU string // in openssl's extendedKeyUsage output
		notEKU  string
		wantSAN []string
	}{
		{"client", IssueOptions{CN: "dev1"}, "TLS Web Client Authentication", "Server", nil},
		{"client with SAN", IssueOptions{CN: "dev2", SANs: []string{"dev2.lan", "10.0.0.2"}}, "Client", "Server", []string{"DNS:dev2.lan", "IP Address:10.0.0.2"}},
		{"server", IssueOptions{CN: "broker.lan", Server: true, SANs: []string{"mqtt.lan", "192.168.1.10", "::1", "broker.lan"}, Days: 30},
			"TLS Web Server Authentication", "Client", []string{"DNS:broker.lan", "DNS:mqtt.lan", "IP Address:192.168.1.10", "IP Address:0:0:0:0:0:0:0:1"}},
		{"server by IP", IssueOptions{CN: "10.0.0.1", Server: true}, "Server", "Client", []string{"IP Address:10.0.0.1"}},
		{"wildcard", IssueOptions{CN: "*.mqtt.lan", Server: true}, "Server", "Client", []string{"DNS:*.mqtt.lan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := d.Issue(tt.o, t0)
			if err != nil {
				t.Fatal(err)
			}
			if p.Cert.Subject.CommonName != tt.o.CN || p.Key == nil || len(p.KeyPEM) == 0 {
				t.Errorf("CN %q key %T", p.Cert.Subject.CommonName, p.Key)
			}
			days := tt.o.Days
			if days == 0 && tt.o.Server {
				days = 365
			} else if days == 0 {
				days = DefaultEnrollDays
			}
			if want := t0.Add(time.Duration(days) * 24 * time.Hour); !p.Cert.NotAfter.Equal(want) {
				t.Errorf("NotAfter %v, want %v", p.Cert.NotAfter, want)
			}
			mustVerify(t, d, p.Cert, t0)
			ext := opensslExt(t, p.Cert)
			if !strings.Contains(ext, tt.wantEKU) || strings.Contains(ext, tt.notEKU) {
				t.Errorf("extensions %q: want EKU %q without %q", ext, tt.wantEKU, tt.notEKU)
			}
			for _, s := range tt.wantSAN {
				if !strings.Contains(ext, s) {
					t.Errorf("extensions %q lack SAN %q", ext, s)
				}
			}
			if n := strings.Count(ext, "DNS:") + strings.Count(ext, "IP Address:"); n != len(tt.wantSAN) {
				t.Errorf("extensions %q: %d SANs, want %d (deduplicated)", ext, n, len(tt.wantSAN))
			}
		})
	}
	recs, err := d.List()
	if err != nil || len(recs) != len(tests) {
		t.Fatalf("List: %d records, %v; want %d", len(recs), err, len(tests))
	}
	server := map[string]bool{}
	for _, tt := range tests {
		server[tt.o.CN] = tt.o.Server
	}
	for _, r := range recs {
		if r.Via != ViaIssue || r.Status(t0) != "valid" || r.Server != server[r.CN] {
			t.Errorf("record %+v", r)
		}
	}
}

func TestIssueRefusals(t *testing.T) {
	d := newDir(t)
	tests := []struct {
		name     string
		o        IssueOptions
		sentinel error
		want     string
	}{
		{"subject equals CA", IssueOptions{CN: "Test Fleet CA", Server: false}, ErrPolicy, "the CA's own name"},
		{"subject equals CA, case and spaces", IssueOptions{CN: "test  fleet ca", Server: true}, ErrPolicy, "unknown CA"},
		{"rsa1024", IssueOptions{CN: "dev1", Key: "rsa1024"}, ErrPolicy, "RSA-1024 is too weak"},
		{"unknown key", IssueOptions{CN: "dev1", Key: "ed448"}, nil, `--key "ed448"`},
		{"SAN with space", IssueOptions{CN: "broker.lan", Server: true, SANs: []string{"bad name"}}, ErrPolicy, `--san "bad name": not a DNS name or IP address`},
		{"SAN underscore", IssueOptions{CN: "dev1", SANs: []string{"my_host.lan"}}, ErrPolicy, `--san "my_host.lan"`},
		{"SAN leading hyphen", IssueOptions{CN: "dev1", SANs: []string{"-x.lan"}}, ErrPolicy, "starts or ends with '-'"},
		{"SAN empty label", IssueOptions{CN: "dev1", SANs: []string{"a..lan"}}, ErrPolicy, "empty label"},
		{"SAN trailing dot", IssueOptions{CN: "dev1", SANs: []string{"a.lan."}}, ErrPolicy, `write "a.lan"`},
		{"SAN inner wildcard", IssueOptions{CN: "dev1", SANs: []string{"a.*.lan"}}, ErrPolicy, "wildcard"},
		{"SAN IPv6 zone", IssueOptions{CN: "dev1", SANs: []string{"fe80::1%eth0"}}, ErrPolicy, "zone"},
		{"SAN long label", IssueOptions{CN: "dev1", SANs: []string{strings.Repeat("a", 64) + ".lan"}}, ErrPolicy, "longer than 63"},
		{"SAN empty", IssueOptions{CN: "dev1", SANs: []string{""}}, ErrPolicy, "empty"},
		{"server CN not a host name", IssueOptions{CN: "Mosquitto Broker", Server: true}, ErrPolicy, "must be the host name or IP clients dial"},
		{"server without CN", IssueOptions{Server: true}, nil, "--cn is required"},
		{"client CN not a device id", IssueOptions{CN: "dev 1"}, ErrPolicy, `device id "dev 1"`},
		{"negative days", IssueOptions{CN: "dev1", Days: -3}, nil, "--days -3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Issue(tt.o, t0)
			wantErr(t, err, tt.sentinel, tt.want)
		})
	}
	if recs, _ := d.List(); len(recs) != 0 {
		t.Errorf("refusals recorded %d certificates", len(recs))
	}
}

func TestIssueValidityCutAtCAExpiry(t *testing.T) {
	d, err := InitDir(t.TempDir(), InitOptions{Days: 30}, t0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Issue(IssueOptions{CN: "dev1", Days: 365}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Cert.NotAfter.Equal(d.CA.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", p.Cert.NotAfter, d.CA.Cert.NotAfter)
	}
	_, err = d.Issue(IssueOptions{CN: "dev1"}, t0.Add(31*24*time.Hour))
	wantErr(t, err, nil, "expired")
}

// TestIssueRSA is the one RSA key generation of the suite (2048 bits:
// 4096 takes seconds).
func TestIssueRSA(t *testing.T) {
	d := newDir(t)
	p, err := d.Issue(IssueOptions{CN: "dev1", Key: KeyRSA2048}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := p.Key.(*rsa.PrivateKey); !ok || k.N.BitLen() != 2048 {
		t.Fatalf("key %T", p.Key)
	}
	if p.Cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Error("RSA leaf lacks keyEncipherment")
	}
	mustVerify(t, d, p.Cert, t0)
}

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		in   string
		want KeyType
		err  error
	}{
		{"", KeyEC, nil}, {"ec", KeyEC, nil}, {" EC ", KeyEC, nil}, {"rsa2048", KeyRSA2048, nil},
		{"rsa3072", KeyRSA3072, nil}, {"rsa4096", KeyRSA4096, nil},
		{"rsa1024", "", ErrPolicy}, {"rsa512", "", ErrPolicy}, {"rsa", "", nil}, {"ed25519", "", nil}, {"rsa8192", "", nil},
	}
	for _, tt := range tests {
		got, err := ParseKeyType(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") || (tt.err != nil && !errors.Is(err, tt.err)) {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q (%v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestRevoke(t *testing.T) {
	d := newDir(t)
	enroll := func(id string) *x509.Certificate {
		tok, err := d.NewToken(id, 0, t0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.Enroll(id, tok, csrCN(t, id), 0, t0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a1 := enroll("dev1")
	a2, err := d.Reenroll(a1, csrCN(t, "dev1"), 0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b := enroll("dev2")
	srv, err := d.Issue(IssueOptions{CN: "broker.lan", Server: true}, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, before, _ := d.ReadCRL()

	now := t0.Add(2 * time.Hour)
	recs, err := d.Revoke("dev1", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].CN != "dev1" || !recs[0].Revoked.Equal(now) {
		t.Fatalf("Revoke(dev1) = %+v, want both dev1 certificates", recs)
	}
	_, crl, err := d.ReadCRL()
	if err != nil {
		t.Fatal(err)
	}
	if crl.Number.Cmp(before.Number) <= 0 {
		t.Errorf("CRL number %v after %v", crl.Number, before.Number)
	}
	if len(crl.RevokedCertificateEntries) != 2 {
		t.Errorf("CRL lists %d entries, want 2", len(crl.RevokedCertificateEntries))
	}

	t.Run("openssl", func(t *testing.T) {
		out, err := openssl(t, "crl", "-in", d.file(CRLFile), "-CAfile", d.file(CertFile), "-noout", "-text")
		if err != nil || !strings.Contains(out, "verify OK") {
			t.Fatalf("openssl crl: %v\n%s", err, out)
		}
		for _, c := range []*x509.Certificate{a1, a2} {
			if !strings.Contains(out, "Serial Number: "+FormatSerial(c.SerialNumber)) {
				t.Errorf("openssl crl -text lacks serial %s:\n%s", FormatSerial(c.SerialNumber), out)
			}
		}
		if strings.Contains(out, FormatSerial(b.SerialNumber)) {
			t.Errorf("CRL lists dev2's serial")
		}
		crlCheck := []string{"-crl_check", "-CRLfile", d.file(CRLFile)}
		for _, c := range []*x509.Certificate{a1, a2} {
			if out, err := opensslVerify(t, d, c, now, crlCheck...); err == nil || !strings.Contains(out, "certificate revoked") {
				t.Errorf("openssl verify -crl_check accepted revoked %s: %v\n%s", FormatSerial(c.SerialNumber), err, out)
			}
		}
		for _, c := range []*x509.Certificate{b, srv.Cert} {
			if out, err := opensslVerify(t, d, c, now, crlCheck...); err != nil {
				t.Errorf("openssl verify -crl_check refused %s: %v\n%s", c.Subject.CommonName, err, out)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, err := d.Revoke("dev1", nil, now)
		wantErr(t, err, ErrRevoked, "already revoked")
		_, err = d.Revoke("", a1.SerialNumber, now)
		wantErr(t, err, ErrRevoked, FormatSerial(a1.SerialNumber))
		_, err = d.Revoke("nobody", nil, now)
		wantErr(t, err, ErrNotFound, "--id nobody")
		sn, _ := ParseSerial("0badbadbad")
		_, err = d.Revoke("", sn, now)
		wantErr(t, err, ErrNotFound, "--serial 0BADBADBAD")
		_, err = d.Revoke("dev2", b.SerialNumber, now)
		wantErr(t, err, nil, "exactly one")
		_, err = d.Revoke("", nil, now)
		wantErr(t, err, nil, "exactly one")
	})

	t.Run("by serial", func(t *testing.T) {
		recs, err := d.Revoke("", srv.Cert.SerialNumber, now)
		if err != nil || len(recs) != 1 || recs[0].CN != "broker.lan" || !recs[0].Server {
			t.Fatalf("Revoke(serial) = %+v, %v", recs, err)
		}
	})

	all, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, r := range all {
		status[r.Via+" "+r.CN] += r.Status(now) + " "
	}
	want := map[string]string{"enroll dev1": "revoked ", "reenroll dev1": "revoked ", "enroll dev2": "valid ", "issue broker.lan": "revoked "}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("List: %s is %q, want %q (all: %v)", k, status[k], v, status)
		}
	}
	if got := recs[0].Status(t0.Add(100 * 24 * time.Hour)); got != "revoked" {
		t.Errorf("status of a revoked, expired cert %q, want revoked", got)
	}
}

func TestParseSerial(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{"3A7F09", "3A7F09"}, {"3a7f09", "3A7F09"}, {"0x3a7f09", "3A7F09"}, {"3a:7f:09", "3A7F09"},
		{"serial=0A", "0A"}, {"A", "0A"}, {" 01 ", "01"},
		{"", ""}, {"xyz", ""}, {"-1", ""}, {"0", ""}, {"+1", ""}, {"1_0", ""}, {"0x", ""},
	}
	for _, tt := range tests {
		n, err := ParseSerial(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseSerial(%q) = %v, want an error", tt.in, n)
			}
			continue
		}
		if err != nil || FormatSerial(n) != tt.want {
			t.Errorf("ParseSerial(%q) = %v, %v; want %s", tt.in, n, err, tt.want)
		}
	}
}

func TestKeyHelpers(t *testing.T) {
	k, err := NewKey("")
	if err != nil || KeyTypeOf(k) != KeyEC {
		t.Fatalf("NewKey(\"\") = %T, %v; KeyTypeOf %q", k, err, KeyTypeOf(k))
	}
	if _, err := NewKey("rsa1024"); !errors.Is(err, ErrPolicy) {
		t.Errorf("NewKey(rsa1024): %v, want ErrPolicy", err)
	}
	for bits, want := range map[int]KeyType{1024: KeyRSA2048, 2048: KeyRSA2048, 3000: KeyRSA3072, 8192: KeyRSA4096} {
		if got := KeyTypeOf(&rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), uint(bits-1))}}); got != want {
			t.Errorf("KeyTypeOf(RSA-%d) = %q, want %q", bits, got, want)
		}
	}
	if got := KeyTypeOf("not a key"); got != "" {
		t.Errorf("KeyTypeOf(string) = %q", got)
	}
	pemBytes, err := MarshalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseKey(pemBytes)
	if err != nil || !back.Public().(*ecdsa.PublicKey).Equal(k.Public()) {
		t.Errorf("MarshalKey round trip: %v", err)
	}

	d := newDir(t)
	p, err := d.Issue(IssueOptions{CN: "dev1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(t.TempDir(), "dev1")
	if err := WritePair(p, prefix); err != nil {
		t.Fatal(err)
	}
	for suffix, mode := range map[string]os.FileMode{".crt": 0o644, ".key": 0o600} {
		if st, err := os.Stat(prefix + suffix); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v mode %v, want %v", suffix, err, st.Mode().Perm(), mode)
		}
	}
	if out, err := openssl(t, "verify", "-attime", attime(t0), "-CAfile", d.file(CertFile), prefix+".crt"); err != nil {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}
}

func TestValidDNSName(t *testing.T) {
	for _, s := range []string{"broker", "broker.lan", "a-b.c-d.e", "*.mqtt.lan", "xn--bcher-kva.example", strings.Repeat("a", 63) + ".lan"} {
		if err := ValidDNSName(s); err != nil {
			t.Errorf("ValidDNSName(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "*.", "bad name", "a_b", "-a", "a-", "a..b", "a.", "a.*.b", "**.a", "10.0.0.1%eth0", "ünï.lan", strings.Repeat("a", 64)} {
		if err := ValidDNSName(s); err == nil {
			t.Errorf("ValidDNSName(%q) accepted it", s)
		}
	}
}
