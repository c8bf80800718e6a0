package pki

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"
)

// indexVersion is the only index.json layout this package reads.
const indexVersion = 1

// Via values: how a certificate came to be.
const (
	ViaIssue    = "issue"    // `agent ca issue`
	ViaEnroll   = "enroll"   // first enrollment with a token
	ViaReenroll = "reenroll" // renewal with the current certificate
)

// Record is what the CA remembers of a certificate it issued.
type Record struct {
	Serial    *big.Int
	CN        string
	Server    bool // serverAuth (a broker); otherwise clientAuth (a device)
	NotBefore time.Time
	NotAfter  time.Time
	Revoked   time.Time // zero if not revoked
	Via       string    // ViaIssue, ViaEnroll or ViaReenroll
}

// Status is "revoked", "expired" or "valid" at now.
func (r Record) Status(now time.Time) string {
	switch {
	case !r.Revoked.IsZero():
		return "revoked"
	case !now.Before(r.NotAfter):
		return "expired"
	}
	return "valid"
}

// index is index.json: the certificates issued, the tokens outstanding and
// the last CRL number used.
type index struct {
	Version   int          `json:"version"`
	CRLNumber int64        `json:"crl_number"`
	Certs     []indexCert  `json:"certs"`
	Tokens    []indexToken `json:"tokens"`
}

type indexCert struct {
	Serial    string    `json:"serial"` // FormatSerial
	CN        string    `json:"cn"`
	Server    bool      `json:"server,omitzero"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Revoked   time.Time `json:"revoked,omitzero"`
	Via       string    `json:"via"`
}

type indexToken struct {
	Hash    string    `json:"sha256"` // hex SHA-256 of the whole token string
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Used    time.Time `json:"used,omitzero"`
}

func (c indexCert) record() Record {
	sn, _ := ParseSerial(c.Serial) // validated on load
	return Record{Serial: sn, CN: c.CN, Server: c.Server, NotBefore: c.NotBefore,
		NotAfter: c.NotAfter, Revoked: c.Revoked, Via: c.Via}
}

// parseIndex decodes index.json strictly: an unknown key, a second JSON
// value, a bad serial or a duplicate is an error, since a hand edit that
// half-worked must not silently un-revoke a certificate.
func parseIndex(data []byte) (*index, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ix index
	if err := dec.Decode(&ix); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("truncated or empty")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("extra data after the JSON object")
	}
	if ix.Version != indexVersion {
		return nil, fmt.Errorf("version %d, want %d", ix.Version, indexVersion)
	}
	if ix.CRLNumber < 0 {
		return nil, fmt.Errorf("crl_number %d is negative", ix.CRLNumber)
	}
	serials := map[string]bool{}
	for i, c := range ix.Certs {
		sn, err := ParseSerial(c.Serial)
		if err != nil {
			return nil, fmt.Errorf("certs[%d]: %w", i, err)
		}
		canon := FormatSerial(sn)
		if serials[canon] {
			return nil, fmt.Errorf("certs[%d]: serial %s appears twice", i, canon)
		}
		serials[canon] = true
		ix.Certs[i].Serial = canon
		switch {
		case c.CN == "":
			return nil, fmt.Errorf("certs[%d] (serial %s): empty cn", i, canon)
		case c.NotBefore.IsZero() || c.NotAfter.IsZero():
			return nil, fmt.Errorf("certs[%d] (serial %s): not_before and not_after must both be set", i, canon)
		case c.Via != ViaIssue && c.Via != ViaEnroll && c.Via != ViaReenroll:
			return nil, fmt.Errorf("certs[%d] (serial %s): via %q, want %q, %q or %q", i, canon, c.Via, ViaIssue, ViaEnroll, ViaReenroll)
		}
	}
	hashes := map[string]bool{}
	for i, t := range ix.Tokens {
		if len(t.Hash) != 64 || strings.ToLower(t.Hash) != t.Hash {
			return nil, fmt.Errorf("tokens[%d]: sha256 must be 64 lower-case hex digits", i)
		}
		if _, err := hex.DecodeString(t.Hash); err != nil {
			return nil, fmt.Errorf("tokens[%d]: sha256 must be 64 lower-case hex digits", i)
		}
		if hashes[t.Hash] {
			return nil, fmt.Errorf("tokens[%d]: sha256 appears twice", i)
		}
		hashes[t.Hash] = true
		if err := ValidDeviceID(t.ID); err != nil {
			return nil, fmt.Errorf("tokens[%d]: %w", i, err)
		}
		if t.Expires.IsZero() {
			return nil, fmt.Errorf("tokens[%d] (id %s): expires not set", i, t.ID)
		}
	}
	return &ix, nil
}

func (ix *index) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (ix *index) hasSerial(sn *big.Int) bool {
	return ix.cert(sn) != nil
}

func (ix *index) cert(sn *big.Int) *indexCert {
	want := FormatSerial(sn) // parseIndex canonicalised the stored ones
	for i := range ix.Certs {
		if ix.Certs[i].Serial == want {
			return &ix.Certs[i]
		}
	}
	return nil
}

func (ix *index) add(p *Pair, server bool, via string) {
	c := p.Cert
	ix.Certs = append(ix.Certs, indexCert{
		Serial:    FormatSerial(c.SerialNumber),
		CN:        c.Subject.CommonName,
		Server:    server,
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		Via:       via,
	})
}

// pruneTokens forgets tokens that expired more than TokenRetention ago.
// Until then a used or expired token is kept, so a second attempt with it
// is told what happened instead of "unknown".
func (ix *index) pruneTokens(now time.Time) {
	ix.Tokens = slices.DeleteFunc(ix.Tokens, func(t indexToken) bool {
		return now.Sub(t.Expires) > TokenRetention
	})
}

// FormatSerial prints a serial number as `openssl x509 -serial` does:
// upper-case hex, an even number of digits.
func FormatSerial(sn *big.Int) string {
	s := strings.ToUpper(sn.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}

// ParseSerial reads a serial number in hex as openssl and FormatSerial
// print it: case-insensitive, with or without a 0x prefix or a serial=
// prefix, bytes optionally separated by colons ("7f:3a:…").
func ParseSerial(s string) (*big.Int, error) {
	h := strings.TrimSpace(s)
	h = strings.TrimPrefix(h, "serial=")
	h = strings.TrimPrefix(strings.TrimPrefix(h, "0x"), "0X")
	h = strings.ReplaceAll(h, ":", "")
	n, ok := new(big.Int).SetString(h, 16)
	if h == "" || !ok || strings.ContainsAny(h, "+-_") {
		return nil, fmt.Errorf("serial %q: not a hex number (write it as `openssl x509 -noout -serial` or `agent ca list` prints it, e.g. 3A7F09)", s)
	}
	if n.Sign() <= 0 {
		return nil, fmt.Errorf("serial %q: must be positive", s)
	}
	return n, nil
}
