// Package est is the part of EST, Enrollment over Secure Transport (RFC
// 7030), that a fleet needs: a device fetches the CA certificates
// (/cacerts), gets its first certificate with a one-time token
// (/simpleenroll, HTTP Basic: user = device id, password = token), and
// renews it with the certificate itself as TLS client certificate
// (/simplereenroll). Bodies are base64 DER: a PKCS#10 request up, a
// degenerate certs-only PKCS#7 down.
//
// The Client trusts only the roots it is given, never the system pool, and
// turns TLS and HTTP failures into sentences a person at a serial console
// can act on. The server side is an http.Handler around an Authority, which
// holds the policy (tokens, what a certificate says); the handler does the
// protocol, caps bodies, and answers 429 to an address after repeated
// refusals. Tokens are never logged or echoed.
//
//	c := &est.Client{URL: "https://est.fleet.example:8443", Roots: fleetCA}
//	cert, err := c.Enroll(ctx, "dev-0042", token, csrDER)
//	…
//	next, err := c.Reenroll(ctx, tlsCert, newCSRDER)
//
//	srv := &http.Server{Handler: est.NewHandler(authority, est.ServerOptions{Logger: log}),
//		TLSConfig: est.ServerTLSConfig(serverCert, fleetCAPool)}
//
// Why not github.com/globalsign/est: v1.0.6 (2021, maintenance only) is a
// complete EST (serverkeygen, TPM enrollment, csrattrs) whose library
// package adds five modules to go.mod (itself, go-chi/chi v4, google/go-tpm,
// a 2020 snapshot of go.mozilla.org/pkcs7, a 2021 golang.org/x/time) where
// this package adds one, smallstep/pkcs7, which has no dependencies; a tiny
// main using client and server builds to 6.9 MB against 5.6 MB here
// (linux/arm64, -trimpath -s -w). Its client falls back to the system roots
// when given no anchor, and its CA interface passes *http.Request to the
// policy. The interop tests run its estserver and estclient against this
// package.
package est
