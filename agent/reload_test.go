package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/pki"
)

// TestReload replaces the certificate and key files as an operator would,
// then reloads: the Holder presents the renewed certificate; files that
// cannot be used are refused by name and the credentials in use stay.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	f, err := brokertest.NewFleet(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "agent.toml")
	text := f.AgentConfig("", c, 8883, "", "")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	d, err := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	serial := func() string { return d.creds.Current().Cert.Leaf.SerialNumber.String() }
	issue := func(cn string) *pki.Pair {
		t.Helper()
		p, err := f.CA.Issue(pki.Template{CN: cn, Client: true})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	write := func(path string, data []byte) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	renewed := issue("dev1")
	write(c.Cert, renewed.CertPEM)
	write(c.Key, renewed.KeyPEM)
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	want := renewed.Cert.SerialNumber.String()
	if got := serial(); got != want {
		t.Fatalf("after reload the holder presents serial %s, want the renewed %s", got, want)
	}
	if strings.Contains(logs.String(), "restart the agent") {
		t.Errorf("a credentials-only change asks for a restart:\n%s", logs)
	}

	t.Run("broken key", func(t *testing.T) {
		write(c.Key, []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"))
		err := d.Reload(ctx)
		if err == nil || !strings.Contains(err.Error(), c.Key) {
			t.Fatalf("got %v, want an error naming %s", err, c.Key)
		}
		if got := serial(); got != want {
			t.Errorf("after a failed reload the holder presents %s, want the previous %s", got, want)
		}
		write(c.Key, renewed.KeyPEM)
	})
	t.Run("other CN", func(t *testing.T) {
		other := issue("dev2")
		write(c.Cert, other.CertPEM)
		write(c.Key, other.KeyPEM)
		err := d.Reload(ctx)
		if err == nil || !strings.Contains(err.Error(), c.Cert) || !strings.Contains(err.Error(), `"dev2"`) {
			t.Fatalf("got %v, want an error naming %s and its CN", err, c.Cert)
		}
		if got := serial(); got != want {
			t.Errorf("after a refused reload the holder presents %s, want the previous %s", got, want)
		}
		write(c.Cert, renewed.CertPEM)
		write(c.Key, renewed.KeyPEM)
	})
	t.Run("rest of the file changed", func(t *testing.T) {
		if err := os.WriteFile(cfgPath, []byte(text+"[mqtt]\nprefix = \"other\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := d.Reload(ctx); !errors.Is(err, ErrRestartNeeded) {
			t.Fatalf("Reload after a change outside [tls] = %v, want ErrRestartNeeded", err)
		}
	})
	t.Run("broken config", func(t *testing.T) {
		if err := os.WriteFile(cfgPath, []byte(text+"bogus = 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := d.Reload(ctx)
		if err == nil || !strings.Contains(err.Error(), cfgPath) {
			t.Fatalf("got %v, want an error naming %s", err, cfgPath)
		}
		if got := serial(); got != want {
			t.Errorf("after a failed reload the holder presents %s, want the previous %s", got, want)
		}
	})
}
