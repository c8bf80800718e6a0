// Package cli is the agent's command line: it parses subcommands and flags,
// builds the config and calls into the packages that do the work. It returns
// exit codes instead of exiting, so it is tested in-process.
//
// Exit codes: 0 success or clean stop, 1 runtime failure, 2 bad usage,
// config or credentials (retrying will not help; the message says the fix).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/edgeagent/agent/agent"
	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/discovery"
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
  agent discover [--timeout 3s] [--json] [--config FILE] [--service _secure-mqtt._tcp] [--interface NAME]... [--ip-version 4|6|both]
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
	case "discover":
		return discover(ctx, args[1:], stdout, stderr)
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

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// discover is a one-shot mDNS listing of brokers: what the daemon would see.
func discover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent discover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to listen for answers")
	asJSON := fs.Bool("json", false, "print JSON")
	cfgPath := fs.String("config", "", "take --service, --interface and --ip-version from this config's [broker]")
	service := fs.String("service", discovery.DefaultService, "DNS-SD service type")
	ipv := fs.String("ip-version", discovery.Both, "4, 6 or both")
	var ifaces listFlag
	fs.Var(&ifaces, "interface", "interface to browse on (repeatable; default: all multicast-capable)")
	if err := fs.Parse(args); err != nil {
		return ExitRefused
	}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return refuse(stderr, err)
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["service"] {
			*service = cfg.Broker.Service
		}
		if !set["ip-version"] {
			*ipv = cfg.Broker.IPVersion
		}
		if !set["interface"] {
			ifaces = cfg.Broker.Interfaces
		}
	}
	if fs.NArg() > 0 || *timeout <= 0 || (*ipv != "4" && *ipv != "6" && *ipv != "both") {
		fmt.Fprintln(stderr, "agent discover: takes only flags; --timeout > 0; --ip-version 4, 6 or both")
		return ExitRefused
	}
	b := &discovery.MDNS{Interfaces: ifaces, IPVersion: *ipv, Settle: *timeout}
	svcs, err := b.Browse(ctx, *service, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "agent discover: %v\n", err)
		return ExitFailure
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Instance < svcs[j].Instance })
	if *asJSON {
		if svcs == nil {
			svcs = []discovery.Service{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(svcs)
		return ExitOK
	}
	if len(svcs) == 0 {
		fmt.Fprintf(stdout, "no %s service answered within %v\n", *service, *timeout)
		return ExitOK
	}
	for _, s := range svcs {
		// %q: these strings come from the LAN and may hold control bytes.
		fmt.Fprintf(stdout, "%q\n  host %q  port %d\n  addresses %v\n  txt %q\n", s.Instance, s.Host, s.Port, s.Addrs, s.TXT)
	}
	return ExitOK
}
