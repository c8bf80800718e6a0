// Command agent-bench is `make bench`: it builds the agent as shipped,
// measures it beside mosquitto_pub and mosquitto_sub on one mutual-TLS
// Mosquitto and prints one markdown table (see internal/benchsuite).
//
//	go run ./cmd/agent-bench [-quick] [-out docs/bench.md] [-agent BIN] [-runs N]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeagent/agent/internal/benchsuite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := benchsuite.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent-bench:", err)
		os.Exit(1)
	}
}
