package est

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzDecodeCSR feeds the server's request body decoder; it must return an
// error, never panic, and whatever it accepts must have a verified
// signature.
func FuzzDecodeCSR(f *testing.F) {
	_, csr := newCSR(f, "dev-1")
	b64 := base64.StdEncoding.EncodeToString(csr)
	for _, seed := range []string{
		b64,
		strings.TrimRight(b64, "="),
		b64[:40] + "\r\n" + b64[40:] + "\r\n",
		" \t" + b64 + "\n",
		"",
		"MII*",
		base64.StdEncoding.EncodeToString([]byte("hello")),
		base64.StdEncoding.EncodeToString(csr[:len(csr)/2]),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		csr, err := decodeCSR(body)
		if err == nil && csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR whose signature does not verify")
		}
	})
}

// FuzzDecodeCerts feeds the client's response decoder with what a hostile
// or broken server could send.
func FuzzDecodeCerts(f *testing.F) {
	a := newFakeAuthority(f, nil)
	one, err := encodeCerts(a.caCerts())
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		one,
		bytes.ReplaceAll(one, []byte("\r\n"), nil),
		[]byte(""),
		[]byte("!!!"),
		[]byte(base64.StdEncoding.EncodeToString([]byte{0x30, 0x80, 0x06, 0x09})), // BER indefinite length
		[]byte(base64.StdEncoding.EncodeToString(a.ca.Cert.Raw)),                  // a bare certificate
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		certs, err := decodeCerts(body)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
	})
}
