package tlsclient

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
)

// Stages of a connection, recorded in Dial's errors so that Explain can tell
// a connection closed during the handshake (not a TLS port?) from one the
// broker closed later.
const (
	stageConnect   = "connect"
	stageHandshake = "TLS handshake"
)

// DialError is an error of Dial: the stage that failed, the address, and the
// cause.
type DialError struct {
	Stage string // "connect" or "TLS handshake"
	Addr  string
	Err   error
}

func (e *DialError) Error() string {
	return "tlsclient: " + e.Stage + " to broker " + e.Addr + ": " + e.Err.Error()
}

func (e *DialError) Unwrap() error { return e.Err }

// Dial connects to addr ("ip:port" or "host:port") and completes the TLS
// handshake with cfg, both bounded by ctx. The broker's certificate is
// checked against cfg.ServerName, not against the host of addr, so a broker
// found by IP is still verified under its name.
//
// Under TLS 1.3 the broker judges the client certificate after the client
// has finished its handshake, so a refused certificate shows up as an error
// of the first Read, not of Dial; Explain understands both.
func Dial(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error) {
	if cfg == nil {
		return nil, &DialError{Stage: stageConnect, Addr: addr, Err: errors.New("no TLS configuration")}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Stage: stageConnect, Addr: addr, Err: err}
	}
	if cfg.ServerName == "" {
		// crypto/tls would then refuse anyway; take the host like tls.Dial.
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			raw.Close()
			return nil, &DialError{Stage: stageConnect, Addr: addr, Err: err}
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &DialError{Stage: stageHandshake, Addr: addr, Err: err}
	}
	return conn, nil
}
