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
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/edgeagent/agent/agent"
	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/sensors"
	gpiokind "github.com/edgeagent/agent/sensors/gpio"
	"github.com/edgeagent/agent/sensors/hostenv"
	"github.com/edgeagent/agent/sensors/kinds"
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
  agent sensors [--config FILE] [--scan BUS]
  agent ca init|issue|token|revoke|list|crl --dir DIR ...   (agent ca for details)
  agent enroll --ca ca.crt --token TOKEN [--server URL] [--id ID] [--dir /etc/agent/tls] [--key ec|rsa2048|rsa4096] [--san ...] [--overwrite]
  agent broker-config --ca-dir DIR --host NAME [--san ...] [--out DIR] [--cert-dir DIR] [--master ID] [--local-plain] ...
  agent fleet [--config FILE] [--json]                      (on the master: the devices from their retained status)
  agent send ID ACTION [key=value...] [--timeout 5s] [--json] (exit 0 ok, 1 failed, 3 no reply)
  agent watch [ID] [--sensor S] [--json]                    (telemetry as it arrives)
  agent doctor [--config FILE] [--json] [--timeout 5s]      (checks config, credentials, name, TCP, TLS, MQTT; exit 0 ok, 1 a check failed)
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
	case "sensors":
		return sensorsCmd(ctx, args[1:], stdout, stderr)
	case "discover":
		return discover(ctx, args[1:], stdout, stderr)
	case "ca":
		return caCmd(args[1:], stdout, stderr, time.Now)
	case "enroll":
		return enrollCmd(ctx, args[1:], stdout, stderr)
	case "broker-config":
		return brokerConfigCmd(args[1:], stdout, stderr)
	case "fleet":
		return fleetCmd(ctx, args[1:], stdout, stderr)
	case "send":
		return sendCmd(ctx, args[1:], stdout, stderr)
	case "watch":
		return watchCmd(ctx, args[1:], stdout, stderr)
	case "doctor":
		return doctorCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, versionLine(version))
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
	gc := 0
	if os.Getenv("GOGC") == "" {
		// The daemon's live heap is a few hundred KiB; at Go's default the
		// heap grows to 4 MiB of garbage between collections, which on a
		// board is most of the agent's memory. Collecting at +20% keeps
		// it small for a negligible CPU cost (GOGC overrides; a backlog
		// drains at the default).
		gc = 20
		debug.SetGCPercent(gc)
	}
	cfg, err := config.LoadRole(*path, *role)
	if err != nil {
		return refuse(stderr, err)
	}
	opts := agent.Options{Config: cfg, Version: version, Logger: log, GCPercent: gc}
	d, err := agent.New(opts)
	if err != nil {
		return refuse(stderr, err)
	}
	// One SIGHUP registration for the process: a hangup between two daemons
	// (a reload in progress) waits for the next one instead of killing us.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		runCtx, stopRun := context.WithCancel(ctx)
		restart := make(chan struct{}, 1)
		stopReload := reloadOnHangup(runCtx, hup, d, log, func() {
			d.StopForRestart()
			restart <- struct{}{}
			stopRun()
		})
		err := d.Run(runCtx)
		stopReload()
		stopRun()
		if err != nil {
			log.Error("agent failed", "err", err)
			return ExitFailure
		}
		select {
		case <-restart:
		default:
			return ExitOK // a stop, not a reload
		}
		// A reload whose config changes more than the credentials: a new
		// daemon from the new file, or, if it is refused now (a port taken,
		// hardware gone), from the previous config again.
		next, err := config.LoadRole(*path, *role)
		if err == nil {
			opts.Config = next
			d, err = agent.New(opts)
		}
		if err != nil {
			log.Error("SIGHUP: the new config is refused; running on with the previous one", "err", err)
			opts.Config = cfg
			if d, err = agent.New(opts); err != nil {
				return refuse(stderr, err)
			}
			continue
		}
		cfg = next
		log.Info("SIGHUP: the new config is in use", "config", cfg.Path)
	}
}

// reloadOnHangup reloads at each SIGHUP (systemctl reload) while the daemon
// runs: the credentials live, and for a config that changes more, restart
// is called (the daemon is stopped and built again from the new file). A
// config that is refused is logged and the daemon keeps running as it is.
// It is here, not in main's signal context, because a hangup is not a
// reason to stop.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, d *agent.Daemon, log *slog.Logger, restart func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			err := d.Reload(ctx)
			switch {
			case errors.Is(err, agent.ErrRestartNeeded):
				log.Info("SIGHUP: the config changed beyond the credentials: building the agent again from it", "why", err)
				restart()
				return
			case err != nil:
				log.Error("SIGHUP: reload refused; the agent runs on as it is", "err", err)
			default:
				log.Info("SIGHUP: credentials reloaded")
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// printJSONList prints a list as indented JSON, [] rather than null when
// empty (scripts iterate over it).
func printJSONList[T any](w io.Writer, list []T) error {
	if list == nil {
		list = []T{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(list)
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
		printJSONList(stdout, svcs)
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

// sensorsCmd probes each configured sensor once and prints its reading or
// its error: what a person does first when wiring a board. --scan lists the
// I2C addresses that answer on a bus.
func sensorsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent sensors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "config file (TOML)")
	scan := fs.String("scan", "", "list the addresses answering on this I2C bus (\"1\" or \"/dev/i2c-1\")")
	if err := fs.Parse(args); err != nil {
		return ExitRefused
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agent sensors: unexpected argument %q\n", fs.Arg(0))
		return ExitRefused
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env, closeEnv := hostenv.New(log, gpiokind.HostPin)
	defer closeEnv()
	if *scan != "" {
		bus, err := env.I2C(*scan)
		if err != nil {
			fmt.Fprintf(stderr, "agent sensors: %v\n", err)
			return ExitFailure
		}
		found := hostenv.Scan(bus)
		if len(found) == 0 {
			fmt.Fprintf(stdout, "no device answers on %s\n", *scan)
			return ExitOK
		}
		for _, a := range found {
			fmt.Fprintf(stdout, "0x%02x\n", a)
		}
		return ExitOK
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return refuse(stderr, err)
	}
	return probe(ctx, cfg, env, stdout)
}

// probe reads each configured sensor once.
func probe(ctx context.Context, cfg *config.Config, env *sensors.Env, stdout io.Writer) int {
	code := ExitOK
	for _, sc := range cfg.Sensors {
		s, err := kinds.NewSensor(sensors.Spec{Name: sc.Name, Type: sc.Type, Options: sc.Options, Env: env})
		if err != nil {
			fmt.Fprintf(stdout, "%-12s %-8s FAIL  %v\n", sc.Name, sc.Type, err)
			code = ExitFailure
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := s.Read(rctx)
		cancel()
		if c, ok := s.(sensors.Closer); ok {
			_ = c.Close()
		}
		if err != nil {
			fmt.Fprintf(stdout, "%-12s %-8s FAIL  %v\n", sc.Name, sc.Type, err)
			code = ExitFailure
			continue
		}
		b, _ := json.Marshal(v)
		fmt.Fprintf(stdout, "%-12s %-8s ok    %s\n", sc.Name, sc.Type, b)
	}
	return code
}
