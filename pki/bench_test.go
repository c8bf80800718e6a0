package pki

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkIssue is the cost of issuing one certificate with a new key:
// in memory, through the CA directory (index under flock, fsynced), and
// the openssl recipe of the tutorials (req + x509 -req, two processes) as
// the reference, in the same run.
func BenchmarkIssue(b *testing.B) {
	dir := b.TempDir()
	d, err := InitDir(filepath.Join(dir, "ca"), InitOptions{}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		key  KeyType
	}{{"ecdsa-p256", KeyEC}, {"rsa2048", KeyRSA2048}} {
		b.Run("memory/"+c.name, func(b *testing.B) {
			bits, _ := c.key.rsaBits()
			for b.Loop() {
				if _, err := d.CA.Issue(Template{CN: "dev1", Client: true, RSABits: bits}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("dir/"+c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := d.Issue(IssueOptions{CN: "dev1", Key: c.key}, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		b.Log("openssl not installed: no reference figure")
		return
	}
	for _, c := range []struct{ name, newkey string }{
		{"ecdsa-p256", "ec"}, {"rsa2048", "rsa:2048"},
	} {
		b.Run("openssl/"+c.name, func(b *testing.B) {
			out := b.TempDir()
			args := []string{"req", "-new", "-nodes", "-newkey", c.newkey, "-keyout", filepath.Join(out, "k"), "-subj", "/CN=dev1", "-out", filepath.Join(out, "csr")}
			if c.newkey == "ec" {
				args = append(args, "-pkeyopt", "ec_paramgen_curve:P-256")
			}
			for b.Loop() {
				if o, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
					b.Fatalf("%v %s", err, o)
				}
				if o, err := exec.Command("openssl", "x509", "-req", "-in", filepath.Join(out, "csr"), "-CA", filepath.Join(d.Path, CertFile),
					"-CAkey", filepath.Join(d.Path, KeyFile), "-CAcreateserial", "-CAserial", filepath.Join(out, "srl"), "-days", "90",
					"-out", filepath.Join(out, "crt")).CombinedOutput(); err != nil {
					b.Fatalf("%v %s", err, o)
				}
			}
		})
	}
}
