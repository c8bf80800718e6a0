package enroll

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/edgeagent/agent/internal/atomicfile"
	"github.com/edgeagent/agent/pki"
	"github.com/edgeagent/agent/sensors"
	"github.com/edgeagent/agent/tlsclient"
)

// Renewal timing.
const (
	// RenewAt is the fraction of the lifetime after which renewal starts.
	RenewAt = 2.0 / 3
	// Jitter spreads a fleet enrolled together: renewal starts up to this
	// fraction of the lifetime earlier, at random.
	Jitter = 1.0 / 20
	// MinRetry and MaxRetry bound the backoff between failed attempts.
	MinRetry = 30 * time.Second
	MaxRetry = time.Hour
)

// Renewer keeps the client certificate in Holder fresh: two thirds into its
// lifetime (less a random jitter) it makes a new key, has it certified
// through Reenroll with the current certificate, writes key and certificate
// atomically and swaps them into Holder, so the next handshake presents the
// new certificate with no restart and no reconnect code.
type Renewer struct {
	Holder *tlsclient.Holder
	Client Enroller
	Clock  sensors.Clock // nil is the wall clock
	Logger *slog.Logger  // nil discards
	// Key is the type of the new keys; "" keeps the current key's type.
	Key pki.KeyType
	// Rand returns a number in [0,1) for the jitter; nil is math/rand.
	Rand func() float64
	// Renewed is called after each swap (nil: nothing).
	Renewed func(*tlsclient.Credentials)
}

// Due returns when renewal of c should start, for a jitter draw r in [0,1).
func Due(c *x509.Certificate, r float64) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(time.Duration(float64(life) * (RenewAt - Jitter*r)))
}

// Run renews until ctx ends. It returns nil when ctx ends; an expired
// certificate stops renewal with a log line saying to re-enroll.
func (rn *Renewer) Run(ctx context.Context) error {
	clock, log, draw := rn.Clock, rn.Logger, rn.Rand
	if clock == nil {
		clock = sensors.RealClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if draw == nil {
		draw = rand.Float64
	}
	// The timer is made at the first wait, so it is armed only with a real
	// deadline (a test's fake clock sees exactly the waits).
	var timer sensors.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	wait := func(d time.Duration) bool {
		if timer == nil {
			timer = clock.NewTimer(max(d, 0))
		} else {
			timer.Reset(max(d, 0))
		}
		select {
		case <-ctx.Done():
			return false
		case <-timer.C():
			return true
		}
	}
	retry := time.Duration(0)
	for {
		cur := rn.Holder.Current()
		leaf := cur.Cert.Leaf
		now := clock.Now()
		if !now.Before(leaf.NotAfter) {
			log.Error("client certificate expired: it cannot be renewed; enroll this device again with a new token (agent ca token on the master, then agent enroll --overwrite)",
				"cert", cur.Files.Cert, "expired", leaf.NotAfter.UTC().Format(time.RFC3339))
			<-ctx.Done()
			return nil
		}
		if retry == 0 {
			due := Due(leaf, draw())
			log.Info("certificate renewal scheduled", "at", due.UTC().Format(time.RFC3339), "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
			if !wait(due.Sub(now)) {
				return nil
			}
		}
		next, err := rn.renew(ctx, cur, clock.Now())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			retry = min(max(2*retry, MinRetry), MaxRetry)
			left := leaf.NotAfter.Sub(clock.Now())
			log.Warn("certificate renewal failed; retrying", "in", retry, "days_left", fmt.Sprintf("%.1f", left.Hours()/24), "err", err)
			if !wait(min(retry, max(left, 0))) {
				return nil
			}
			continue
		}
		retry = 0
		rn.Holder.Swap(next)
		log.Info("certificate renewed; the next connection presents it", "serial", pki.FormatSerial(next.Cert.Leaf.SerialNumber),
			"expires", next.Cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		if rn.Renewed != nil {
			rn.Renewed(next)
		}
	}
}

// renew does one renewal and returns the new credentials, written to the
// same files.
func (rn *Renewer) renew(ctx context.Context, cur *tlsclient.Credentials, now time.Time) (*tlsclient.Credentials, error) {
	kt := rn.Key
	if kt == "" {
		kt = pki.KeyTypeOf(cur.Cert.PrivateKey)
	}
	key, err := pki.NewKey(kt)
	if err != nil {
		return nil, err
	}
	id := cur.Cert.Leaf.Subject.CommonName
	csr, err := CSR(key, id, nil)
	if err != nil {
		return nil, err
	}
	cert, err := rn.Client.Reenroll(ctx, cur.Cert, csr)
	if err != nil {
		return nil, err
	}
	if err := CheckIssued(cert, key, id, cur.Roots); err != nil {
		return nil, err
	}
	keyPEM, err := pki.MarshalKey(key)
	if err != nil {
		return nil, err
	}
	f := cur.Files
	// Key and certificate are renamed into place back to back; the new
	// pair is checked by Load before the holder sees it.
	var set atomicfile.Set
	defer set.Abort()
	if err := set.Add(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return nil, err
	}
	if err := set.Add(f.Key, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := set.Commit(); err != nil {
		return nil, err
	}
	next, err := tlsclient.Load(f, now)
	if err != nil {
		return nil, fmt.Errorf("renewed files do not load: %w", err)
	}
	return next, nil
}
