package brokerconf

import (
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/pki"
)

// TestReuse: a broker certificate in place is kept only while it fits;
// otherwise Write refuses with ErrReissue (writing nothing) until Reissue.
func TestReuse(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.InitDir(filepath.Join(dir, "ca"), pki.InitOptions{}, now)
	if err != nil {
		t.Fatal(err)
	}
	base := Options{CADir: ca.Path, Host: "hub.lan", SANs: []string{"10.0.0.1"}, Out: filepath.Join(dir, "out"), CertDir: filepath.Join(dir, "out"), Now: now}
	first, err := Write(base)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Issued || strings.Join(first.CertNames, " ") != "hub.lan 10.0.0.1" {
		t.Fatalf("first Write: issued %v names %q", first.Issued, first.CertNames)
	}
	for _, tc := range []struct {
		name, why string
		change    func(o *Options)
	}{
		{"same", "", func(o *Options) {}},
		{"another host", "not for hub2.lan", func(o *Options) { o.Host = "hub2.lan" }},
		{"another SAN", "not for 10.0.0.2", func(o *Options) { o.SANs = []string{"10.0.0.2"} }},
		{"expiring", "expires", func(o *Options) { o.Now = now.Add(340 * 24 * time.Hour) }},
		{"another CA", "not a server certificate of the CA", func(o *Options) {
			other, err := pki.InitDir(filepath.Join(dir, "ca2"), pki.InitOptions{CN: "Other CA"}, now)
			if err != nil {
				t.Fatal(err)
			}
			o.CADir = other.Path
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.change(&o)
			before, _ := os.ReadFile(first.CertFile)
			res, err := Write(o)
			if tc.why == "" {
				if err != nil || res.Issued {
					t.Fatalf("issued %v, %v; want the certificate kept", res.Issued, err)
				}
				return
			}
			if !errors.Is(err, ErrReissue) || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "--reissue") {
				t.Fatalf("err = %v; want ErrReissue saying %q and naming --reissue", err, tc.why)
			}
			if after, _ := os.ReadFile(first.CertFile); string(after) != string(before) {
				t.Error("the refused Write replaced the certificate")
			}
		})
	}
	t.Run("reissue", func(t *testing.T) {
		o := base
		o.Reissue = true
		res, err := Write(o)
		if err != nil || !res.Issued || res.CertSerial == first.CertSerial {
			t.Fatalf("with Reissue: issued %v serial %s, %v", res.Issued, res.CertSerial, err)
		}
		if !strings.Contains(strings.Join(res.Notes, "\n"), "--serial "+first.CertSerial) {
			t.Errorf("no note on revoking the replaced %s: %q", first.CertSerial, res.Notes)
		}
		first = res
	})
	t.Run("revoked", func(t *testing.T) {
		if _, err := ca.Revoke("", mustSerial(t, first.CertSerial), now); err != nil {
			t.Fatal(err)
		}
		if _, err := Write(base); !errors.Is(err, ErrReissue) || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("err = %v; want ErrReissue: revoked", err)
		}
		o := base
		o.Reissue = true
		res, err := Write(o)
		if err != nil || !res.Issued || res.CertSerial == first.CertSerial {
			t.Fatalf("with Reissue: issued %v serial %s, %v", res.Issued, res.CertSerial, err)
		}
	})
	t.Run("half a pair", func(t *testing.T) {
		if err := os.Remove(first.CertFile); err != nil {
			t.Fatal(err)
		}
		if _, err := Write(base); !errors.Is(err, ErrReissue) || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("err = %v; want ErrReissue: missing", err)
		}
	})
}

func mustSerial(t *testing.T, s string) *big.Int {
	t.Helper()
	n, err := pki.ParseSerial(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
