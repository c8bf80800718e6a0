package pki

import (
	"encoding/json"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

func TestWriteCRL(t *testing.T) {
	d := newDir(t)
	last := big.NewInt(1) // InitDir's
	for i, now := range []time.Time{t0, t0.Add(time.Hour), t0} {
		pemBytes, err := d.WriteCRL(now)
		if err != nil {
			t.Fatal(err)
		}
		got, crl, err := d.ReadCRL()
		if err != nil || string(got) != string(pemBytes) {
			t.Fatalf("ReadCRL after WriteCRL: %v", err)
		}
		if crl.Number.Cmp(last) <= 0 {
			t.Errorf("write %d: CRL number %v, not above %v", i, crl.Number, last)
		}
		last = crl.Number
		if !crl.ThisUpdate.Equal(now.Add(-time.Minute)) || !crl.NextUpdate.Equal(now.Add(CRLValidity)) {
			t.Errorf("thisUpdate %v nextUpdate %v for now %v", crl.ThisUpdate, crl.NextUpdate, now)
		}
	}
	if out, err := openssl(t, "crl", "-in", d.file(CRLFile), "-CAfile", d.file(CertFile), "-noout", "-crlnumber"); err != nil || !strings.Contains(out, "verify OK") || !strings.Contains(out, "crlNumber=0x04") {
		t.Errorf("openssl crl: %v\n%s", err, out)
	}
}

func TestRefreshCRL(t *testing.T) {
	d := newDir(t)
	other := newDir(t)
	const margin = 2 * 24 * time.Hour
	number := func() int64 {
		_, crl, err := d.ReadCRL()
		if err != nil {
			t.Fatal(err)
		}
		return crl.Number.Int64()
	}
	steps := []struct {
		name        string
		now         time.Time
		before      func()
		wantChanged bool
	}{
		{"fresh from init", t0, nil, false},
		{"still more than margin left", t0.Add(CRLValidity - margin - time.Minute), nil, false},
		{"inside the margin", t0.Add(CRLValidity - margin + time.Minute), nil, true},
		{"just refreshed", t0.Add(CRLValidity - margin + 2*time.Minute), nil, false},
		{"missing", t0.Add(CRLValidity), func() { os.Remove(d.file(CRLFile)) }, true},
		{"garbage", t0.Add(CRLValidity), func() {
			os.WriteFile(d.file(CRLFile), []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"), 0o644)
		}, true},
		{"another CA's", t0.Add(CRLValidity), func() {
			b, _ := os.ReadFile(other.file(CRLFile))
			os.WriteFile(d.file(CRLFile), b, 0o644)
		}, true},
		{"index ahead of the file (crash between the renames)", t0.Add(CRLValidity), func() {
			b, _ := os.ReadFile(d.file(IndexFile))
			var ix map[string]any
			json.Unmarshal(b, &ix)
			ix["crl_number"] = ix["crl_number"].(float64) + 1
			b, _ = json.Marshal(ix)
			os.WriteFile(d.file(IndexFile), b, 0o600)
		}, true},
		{"settled", t0.Add(CRLValidity), nil, false},
		{"expired", t0.Add(3 * CRLValidity), nil, true},
	}
	prev := number()
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		pemBytes, changed, err := d.RefreshCRL(st.now, margin)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if changed != st.wantChanged {
			t.Errorf("%s: changed = %v, want %v", st.name, changed, st.wantChanged)
		}
		file, _ := os.ReadFile(d.file(CRLFile))
		if string(file) != string(pemBytes) {
			t.Errorf("%s: returned PEM differs from %s", st.name, CRLFile)
		}
		n := number()
		if changed && n <= prev || !changed && n != prev {
			t.Errorf("%s: CRL number %d after %d (changed %v)", st.name, n, prev, changed)
		}
		prev = n
	}
	if out, err := openssl(t, "crl", "-in", d.file(CRLFile), "-CAfile", d.file(CertFile), "-noout"); err != nil || !strings.Contains(out, "verify OK") {
		t.Errorf("openssl crl: %v\n%s", err, out)
	}
}

// TestCRLDropsExpired: a revoked certificate leaves the CRL once it has
// expired, since expiry alone then refuses it.
func TestCRLDropsExpired(t *testing.T) {
	d := newDir(t)
	p, err := d.Issue(IssueOptions{CN: "dev1", Days: 1}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Revoke("", p.Cert.SerialNumber, t0); err != nil {
		t.Fatal(err)
	}
	_, crl, _ := d.ReadCRL()
	if len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("%d entries, want 1", len(crl.RevokedCertificateEntries))
	}
	if _, err := d.WriteCRL(t0.Add(2 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, crl, _ = d.ReadCRL()
	if len(crl.RevokedCertificateEntries) != 0 {
		t.Errorf("%d entries after expiry, want 0", len(crl.RevokedCertificateEntries))
	}
}
