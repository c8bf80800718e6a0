package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// tokenBytes is the secret's length: 256 bits make guessing hopeless, so a
// plain SHA-256 is the right way to store it (a slow hash only defends
// low-entropy passwords).
const tokenBytes = 32

// NewToken makes a one-time enrollment token for device id, valid for ttl
// (DefaultTokenTTL if 0), and records its SHA-256 in the index. The token
// is "<id>.<secret>", the secret 32 random bytes in unpadded base64url;
// only its hash is stored, so the caller must hand it over now.
// Tokens that expired more than TokenRetention ago are pruned.
func (d *Dir) NewToken(id string, ttl time.Duration, now time.Time) (string, error) {
	if err := ValidDeviceID(id); err != nil {
		return "", fmt.Errorf("ca token: --id: %w", err)
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 {
		return "", fmt.Errorf("ca token: --ttl %s: must be positive", ttl)
	}
	secret := make([]byte, tokenBytes)
	rand.Read(secret) // never fails (crypto/rand crashes the program instead)
	tok := id + "." + base64.RawURLEncoding.EncodeToString(secret)
	err := d.update(func(ix *index) (bool, map[string][]byte, error) {
		ix.pruneTokens(now)
		ix.Tokens = append(ix.Tokens, indexToken{Hash: tokenHash(tok), ID: id, Created: now.UTC(), Expires: now.Add(ttl).UTC()})
		return true, nil, nil
	})
	if err != nil {
		return "", err
	}
	return tok, nil
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// TokenID returns the device id a token was made for: everything before
// its last '.' (the base64url secret has none). ok is false when the
// token has no such shape.
func TokenID(token string) (id string, ok bool) {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || i == len(token)-1 {
		return "", false
	}
	id = token[:i]
	if ValidDeviceID(id) != nil {
		return "", false
	}
	return id, true
}

// Enroll is a device's first certificate: it checks csr against the
// policy, then, under the directory lock, checks the token (ErrToken:
// unknown, for another device, used, expired), marks it used and issues a
// clientAuth-only certificate with CN id for the request's key, valid for
// days (DefaultEnrollDays if 0). A policy failure (ErrPolicy) leaves the
// token unused. Error texts hold no secret, so an enrollment server may
// send them to the client.
func (d *Dir) Enroll(id, token string, csr *x509.CertificateRequest, days int, now time.Time) (*x509.Certificate, error) {
	names, err := d.checkRequest(csr, id, days)
	if err != nil {
		return nil, fmt.Errorf("enroll %s: %w", id, err)
	}
	if days == 0 {
		days = DefaultEnrollDays
	}
	var p *Pair
	err = d.update(func(ix *index) (bool, map[string][]byte, error) {
		ix.pruneTokens(now)
		t, err := findToken(ix, id, token, now)
		if err != nil {
			return false, nil, err
		}
		p, err = d.sign(ix, csr.PublicKey, Template{CN: id, Client: true, DNSNames: names.DNSNames, IPs: names.IPs}, days, now)
		if err != nil {
			return false, nil, err
		}
		t.Used = now.UTC()
		ix.add(p, false, ViaEnroll)
		return true, nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("enroll %s: %w", id, err)
	}
	return p.Cert, nil
}

func findToken(ix *index, id, token string, now time.Time) (*indexToken, error) {
	h := tokenHash(token)
	var t *indexToken
	for i := range ix.Tokens {
		if ix.Tokens[i].Hash == h {
			t = &ix.Tokens[i]
		}
	}
	renew := fmt.Sprintf("make a new one with `agent ca token --id %s`", id)
	switch {
	case t == nil:
		return nil, kindf(ErrToken, "token not recognised by this CA (mistyped, issued by another CA, or expired over %s ago): %s", TokenRetention, renew)
	case t.ID != id:
		return nil, kindf(ErrToken, "token was made for device %q, not %q: use that device's token, or %s", t.ID, id, renew)
	case !t.Used.IsZero():
		return nil, kindf(ErrToken, "token already used at %s: tokens work once; %s", t.Used.Format(time.RFC3339), renew)
	case !now.Before(t.Expires):
		return nil, kindf(ErrToken, "token expired at %s: %s", t.Expires.Format(time.RFC3339), renew)
	}
	return t, nil
}

// checkRequest is the request policy shared by Enroll and Reenroll.
func (d *Dir) checkRequest(csr *x509.CertificateRequest, id string, days int) (csrNames, error) {
	names, err := checkCSR(csr, id)
	if err != nil {
		return csrNames{}, err
	}
	if sameNameAsCA(d.CA.Cert, id) {
		return csrNames{}, kindf(ErrPolicy, "device id %q is the CA's own name: pick another id", id)
	}
	if days < 0 {
		return csrNames{}, kindf(ErrPolicy, "validity of %d days: must be positive", days)
	}
	return names, nil
}

// Reenroll renews a device's certificate: current must chain to this CA,
// be in the index, unrevoked and unexpired at now, and csr must carry the
// same CN and pass the Enroll policy. The new certificate is valid for
// days (DefaultEnrollDays if 0); current stays valid until it expires.
// Refusals wrap ErrPolicy (and ErrRevoked or ErrNotFound where they
// apply).
func (d *Dir) Reenroll(current *x509.Certificate, csr *x509.CertificateRequest, days int, now time.Time) (*x509.Certificate, error) {
	if current == nil {
		return nil, kindf(ErrPolicy, "reenroll: no current certificate")
	}
	cn := current.Subject.CommonName
	if !now.Before(current.NotAfter) {
		return nil, kindf(ErrPolicy, "reenroll %s: current certificate expired at %s: enroll again with a token (`agent ca token --id %s`)", cn, current.NotAfter.UTC().Format(time.RFC3339), cn)
	}
	if !slices.Contains(current.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return nil, kindf(ErrPolicy, "reenroll %s: current certificate is not a device (clientAuth) certificate", cn)
	}
	roots := x509.NewCertPool()
	roots.AddCert(d.CA.Cert)
	if _, err := current.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, kindf(ErrPolicy, "reenroll %s: current certificate does not verify against this CA: %v", cn, err)
	}
	names, err := d.checkRequest(csr, cn, days)
	if err != nil {
		return nil, fmt.Errorf("reenroll %s: %w", cn, err)
	}
	if days == 0 {
		days = DefaultEnrollDays
	}
	var p *Pair
	err = d.update(func(ix *index) (bool, map[string][]byte, error) {
		rec := ix.cert(current.SerialNumber)
		switch {
		case rec == nil:
			return false, nil, &kindError{err: fmt.Errorf("current certificate (serial %s) is not in this CA's index: enroll again with a token", FormatSerial(current.SerialNumber)), kind: errors.Join(ErrPolicy, ErrNotFound)}
		case !rec.Revoked.IsZero():
			return false, nil, &kindError{err: fmt.Errorf("current certificate (serial %s) was revoked at %s", rec.Serial, rec.Revoked.Format(time.RFC3339)), kind: errors.Join(ErrPolicy, ErrRevoked)}
		case rec.CN != cn || rec.Server:
			return false, nil, kindf(ErrPolicy, "current certificate (serial %s) does not match the index (CN %q, server %v): the index or the certificate was tampered with", rec.Serial, rec.CN, rec.Server)
		}
		var err error
		p, err = d.sign(ix, csr.PublicKey, Template{CN: cn, Client: true, DNSNames: names.DNSNames, IPs: names.IPs}, days, now)
		if err != nil {
			return false, nil, err
		}
		ix.add(p, false, ViaReenroll)
		return true, nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reenroll %s: %w", cn, err)
	}
	return p.Cert, nil
}
