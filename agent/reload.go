package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/tlsclient"
)

// Reload re-reads the config file's tls section and the credential files
// (SIGHUP: a certificate replaced by hand or by another tool), builds the
// new credentials completely and only then swaps them in, so the next
// handshake presents them with no reconnect. On any failure the old
// credentials stay and the error names the file to fix.
//
// The credentials are applied live. A change to anything else (the rest of
// the file, the CA trusted for the broker, tls.legacy_cn) returns
// ErrRestartNeeded once the new file has been read and checked.
func (d *Daemon) Reload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The role as the daemon runs it, so a --role override is checked the
	// same way again.
	cfg, err := config.LoadRole(d.cfg.Path, d.cfg.Role)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	files := tlsclient.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}
	creds, err := tlsclient.Load(files, d.now())
	if err != nil {
		return fmt.Errorf("reload: config %s: %w; keeping the current credentials", cfg.Path, err)
	}
	// The broker's ACL is keyed by the CN: a certificate for another id
	// would connect and then be refused every topic.
	if cn := creds.Cert.Leaf.Subject.CommonName; cn != d.id {
		return fmt.Errorf("reload: config %s: tls.cert %s has CN %q, but this agent runs as %q: issue the certificate for %q, or restart the agent to change its id; keeping the current credentials",
			cfg.Path, files.Cert, cn, d.id, d.id)
	}
	old := d.creds.Current()
	d.creds.Swap(creds)
	d.log.Info("credentials reloaded", "cert", files.Cert, "serial", creds.Cert.Leaf.SerialNumber.String(),
		"expires", creds.Cert.Leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))

	rest, cur := *cfg, *d.cfg
	rest.TLS, cur.TLS = config.TLS{}, config.TLS{}
	if !reflect.DeepEqual(rest, cur) || (old != nil && !creds.Roots.Equal(old.Roots)) || cfg.TLS.LegacyCN != d.cfg.TLS.LegacyCN {
		return fmt.Errorf("config %s changed beyond the credentials: %w", cfg.Path, ErrRestartNeeded)
	}
	return nil
}

// ErrRestartNeeded is returned by Reload when the new config has been
// checked and changes more than the credentials: the caller builds a new
// Daemon from it after stopping this one with StopForRestart.
var ErrRestartNeeded = errors.New("the rest of the config needs a new daemon")

// StopForRestart makes the coming stop (cancel Run's context) a handover:
// no offline status and a normal DISCONNECT, so the fleet never sees this
// device go offline for a reload.
func (d *Daemon) StopForRestart() { d.handover.Store(true) }
