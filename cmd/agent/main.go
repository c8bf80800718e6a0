// Command agent is the edge agent for ARM boards: it publishes sensor
// readings to Mosquitto over mutual TLS and answers commands.
// See `agent help` and docs/.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeagent/agent/cmd/agent/cli"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, version)
	stop()
	os.Exit(code)
}
