package tlsclient

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

// BenchmarkHandshake is one mutual-TLS handshake with the real Mosquitto,
// as the agent makes at each (re)connection: broker and device keys both
// ECDSA P-256 (the default of `agent ca` and `agent enroll`), then both
// RSA 2048, in the same run. Both ends run on this machine, so the figure
// is the sum of the board's and the broker's work; on an ARM board the
// client's share (an RSA-2048 signature is ~20× an ECDSA P-256 one) is
// what the default saves.
func BenchmarkHandshake(b *testing.B) {
	if err := brokertest.Available(); err != nil {
		b.Skip(err)
	}
	for _, c := range []struct {
		name string
		bits int
	}{{"ecdsa-p256", 0}, {"rsa2048", 2048}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			ca, err := pki.NewCA("Bench CA", c.bits)
			if err != nil {
				b.Fatal(err)
			}
			caFile := filepath.Join(dir, "ca.crt")
			f, err := brokertest.FleetWithCA(dir, ca, caFile)
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
				b.Fatal(err)
			}
			srv, err := f.Issue("srv", pki.Template{CN: brokerHost, DNSNames: []string{brokerHost}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, RSABits: c.bits})
			if err != nil {
				b.Fatal(err)
			}
			dev, err := f.Issue("dev1", pki.Template{CN: "dev1", Client: true, RSABits: c.bits})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			broker, err := f.Start(ctx, brokertest.Options{CertFile: srv.Cert, KeyFile: srv.Key})
			if err != nil {
				b.Fatal(err)
			}
			defer broker.Stop()
			creds, err := Load(Files{CA: caFile, Cert: dev.Cert, Key: dev.Key}, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			cfg := Config(NewHolder(creds), brokerHost, false)
			cfg.ClientSessionCache = nil // every handshake in full, as after a reboot
			for b.Loop() {
				conn, err := Dial(ctx, broker.Addr, cfg)
				if err != nil {
					b.Fatal(err)
				}
				conn.Close()
			}
		})
	}
}

// BenchmarkClientCrypto is the board's own public-key work in one
// handshake, apart from the key exchange (X25519 either way): signing the
// handshake with its key (CertificateVerify) and checking the broker's
// certificate signature from the CA.
func BenchmarkClientCrypto(b *testing.B) {
	for _, c := range []struct {
		name string
		bits int
	}{{"ecdsa-p256", 0}, {"rsa2048", 2048}} {
		b.Run(c.name, func(b *testing.B) {
			ca, err := pki.NewCA("Bench CA", c.bits)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := ca.Issue(pki.Template{CN: brokerHost, DNSNames: []string{brokerHost}, Server: true, RSABits: c.bits})
			if err != nil {
				b.Fatal(err)
			}
			dev, err := ca.Issue(pki.Template{CN: "dev1", Client: true, RSABits: c.bits})
			if err != nil {
				b.Fatal(err)
			}
			digest := sha256.Sum256([]byte("handshake transcript"))
			var opts crypto.SignerOpts = crypto.SHA256
			if c.bits > 0 {
				opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
			}
			for b.Loop() {
				if _, err := dev.Key.Sign(rand.Reader, digest[:], opts); err != nil {
					b.Fatal(err)
				}
				if err := srv.Cert.CheckSignatureFrom(ca.Cert); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
