package brokertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// StartConfig runs Mosquitto with the configuration file at confPath as it
// is, for tests of a generated configuration: nothing is added, not even
// `user root`, so a broker started as root drops to the mosquitto user
// exactly as in production. addr is the TLS listener the file configures
// ("127.0.0.1:8883"); StartConfig returns once it accepts connections (or,
// with wrap, once the log says the broker is running).
//
// What Mosquitto prints goes to confPath+".log" (Log returns it); the
// caller's file decides what that is. The returned Broker has Dir set to
// the file's directory and Stop, Log and Done as for Fleet.Start.
func StartConfig(ctx context.Context, confPath, addr string, wrap []string) (*Broker, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("brokertest: listener address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("brokertest: listener address %q: port: %w", addr, err)
	}
	b := &Broker{Addr: addr, Host: host, Port: port, Dir: filepath.Dir(confPath), Wrap: wrap,
		logPath: confPath + ".log", done: make(chan struct{})}
	logf, err := os.Create(b.logPath)
	if err != nil {
		return nil, fmt.Errorf("brokertest: %w", err)
	}
	b.cmd = wrapped(wrap, MosquittoPath, "-c", confPath)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("brokertest: start mosquitto: %w", err)
	}
	go func() { b.waitErr = b.cmd.Wait(); logf.Close(); close(b.done) }()
	if err := b.waitReady(ctx, 10*time.Second); err != nil {
		b.Stop()
		return nil, fmt.Errorf("brokertest: %w", err)
	}
	return b, nil
}

var pubFailedRE = regexp.MustCompile(`Publish \d+ failed: ([^\n]*?)\.?\n`)
