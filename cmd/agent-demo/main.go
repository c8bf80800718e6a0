// Command agent-demo runs `make demo`: see internal/demo.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgeagent/agent/internal/demo"
)

func main() {
	bin := flag.String("agent", "bin/agent", "agent binary")
	secs := flag.Int("seconds", 0, "stop after this many seconds (0: at Ctrl-C)")
	keep := flag.Bool("keep", false, "keep the temp dir with the PKI and configs")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := demo.Run(ctx, demo.Options{AgentBin: *bin, Duration: time.Duration(*secs) * time.Second, Out: os.Stdout, Keep: *keep})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
