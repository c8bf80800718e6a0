// Package cli is the agent's command line: it parses subcommands and flags,
// builds the config and calls into the packages that do the work. It returns
// exit codes instead of exiting, so it is tested in-process.
//
// Exit codes: 0 success or clean stop, 1 runtime failure, 2 bad usage,
// config or credentials (retrying will not help; the message says the fix).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/edgeagent/agent/agent"
	"github.com/edgeagent/agent/agent/config"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitRefused = 2
)

const usage = `agent: an edge agent for ARM boards (mutual-TLS MQTT to Mosquitto)

Usage:
  agent run [--config FILE] [--role remote|master] [--log-level debug|info|warn|error]
  agent version
  agent help

Config: ` + config.DefaultPath + ` by default; keys in docs/config.md.
Exit codes: 0 ok, 1 runtime failure, 2 bad usage, config or credentials.
`

// Run executes one command line and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, version string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitRefused
	}
	switch args[0] {
	case "run":
		return run(ctx, args[1:], stderr, version)
	case "version", "--version":
		fmt.Fprintf(stdout, "agent %s\n", version)
		return ExitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "agent: unknown command %q\n\n%s", args[0], usage)
	return ExitRefused
}

func run(ctx context.Context, args []string, stderr io.Writer, version string) int {
	fs := flag.NewFlagSet("agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "config file (TOML)")
	role := fs.String("role", "", "override the config's role: remote or master")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return ExitRefused
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agent run: unexpected argument %q\n", fs.Arg(0))
		return ExitRefused
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "agent run: --log-level %q: use debug, info, warn or error\n", *level)
		return ExitRefused
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	cfg, err := config.Load(*path)
	if err != nil {
		return refuse(stderr, err)
	}
	if *role != "" {
		if err := config.ValidateRole(*role); err != nil {
			return refuse(stderr, fmt.Errorf("--role: %w", err))
		}
		cfg.Role = *role
	}
	d, err := agent.New(agent.Options{Config: cfg, Version: version, Logger: log})
	if err != nil {
		return refuse(stderr, err)
	}
	if err := d.Run(ctx); err != nil {
		log.Error("agent failed", "err", err)
		return ExitFailure
	}
	return ExitOK
}

func refuse(stderr io.Writer, err error) int {
	msg := err.Error()
	// The sentinels' text adds nothing a person needs after the cause.
	for _, s := range []error{config.ErrInvalid, agent.ErrRefused} {
		if errors.Is(err, s) {
			msg = strings.TrimSuffix(strings.TrimPrefix(msg, s.Error()+": "), ": "+s.Error())
		}
	}
	fmt.Fprintf(stderr, "agent: %s\n", msg)
	return ExitRefused
}
