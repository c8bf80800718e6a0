package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// nextCRL signs a CRL of the index's revoked certificates that have not
// yet expired (an expired certificate fails verification by itself) and
// advances the index's CRL number. The number also steps past whatever
// CRLFile holds, so a restored older index never makes a CRL that relying
// parties would take for stale.
func (d *Dir) nextCRL(ix *index, now time.Time) ([]byte, error) {
	n := ix.CRLNumber
	if cur, err := d.parseCRL(); err == nil && cur.Number != nil && cur.Number.IsInt64() && cur.Number.Int64() > n {
		n = cur.Number.Int64()
	}
	n++
	pemBytes, err := d.CA.SignCRL(crlEntries(ix, now), big.NewInt(n), now)
	if err != nil {
		return nil, err
	}
	ix.CRLNumber = n
	return pemBytes, nil
}

func crlEntries(ix *index, now time.Time) []x509.RevocationListEntry {
	var entries []x509.RevocationListEntry
	for _, c := range ix.Certs {
		if c.Revoked.IsZero() || !now.Before(c.NotAfter) {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.record().Serial, RevocationTime: c.Revoked})
	}
	return entries
}

// WriteCRL signs a new CRL (next number, thisUpdate a minute before now,
// nextUpdate CRLValidity after now), writes CRLFile and returns its PEM.
func (d *Dir) WriteCRL(now time.Time) ([]byte, error) {
	var out []byte
	err := d.update(func(ix *index) (bool, map[string][]byte, error) {
		var err error
		if out, err = d.nextCRL(ix, now); err != nil {
			return false, nil, fmt.Errorf("ca crl: %w", err)
		}
		return true, map[string][]byte{CRLFile: out}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RefreshCRL rewrites CRLFile only when it must: the file is missing,
// unparsable or not signed by this CA, its nextUpdate is less than margin
// after now, or it does not carry the index's CRL number (a crash between
// writing the index and the CRL). It returns the current PEM and whether
// it changed.
//
// Run it from the enrollment server well within CRLValidity: OpenSSL, and
// so Mosquitto with a crlfile, refuses every client once the CRL's
// nextUpdate has passed.
func (d *Dir) RefreshCRL(now time.Time, margin time.Duration) ([]byte, bool, error) {
	var out []byte
	var changed bool
	err := d.update(func(ix *index) (bool, map[string][]byte, error) {
		if data, err := os.ReadFile(d.file(CRLFile)); err == nil {
			if crl, err := d.checkCRL(data); err == nil && crl.NextUpdate.Sub(now) >= margin &&
				crl.Number != nil && crl.Number.Cmp(big.NewInt(ix.CRLNumber)) == 0 {
				out = data
				return false, nil, nil
			}
		}
		var err error
		if out, err = d.nextCRL(ix, now); err != nil {
			return false, nil, fmt.Errorf("ca crl: %w", err)
		}
		changed = true
		return true, map[string][]byte{CRLFile: out}, nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, changed, nil
}

// ReadCRL returns CRLFile as PEM and parsed, after checking that this CA
// signed it. It does not judge freshness; see RefreshCRL.
func (d *Dir) ReadCRL() ([]byte, *x509.RevocationList, error) {
	data, err := os.ReadFile(d.file(CRLFile))
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %w: regenerate it with WriteCRL (`agent ca revoke` also does)", err)
	}
	crl, err := d.checkCRL(data)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %s: %w: regenerate it with WriteCRL", d.file(CRLFile), err)
	}
	return data, crl, nil
}

func (d *Dir) parseCRL() (*x509.RevocationList, error) {
	data, err := os.ReadFile(d.file(CRLFile))
	if err != nil {
		return nil, err
	}
	return d.checkCRL(data)
}

func (d *Dir) checkCRL(data []byte) (*x509.RevocationList, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "X509 CRL" {
		return nil, errors.New("no PEM X509 CRL")
	}
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		return nil, err
	}
	if err := crl.CheckSignatureFrom(d.CA.Cert); err != nil {
		return nil, fmt.Errorf("not signed by this CA: %w", err)
	}
	return crl, nil
}
