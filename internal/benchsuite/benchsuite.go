// Package benchsuite is `make bench`: it measures the built agent beside a
// reference measured in the same run, on the same mutual-TLS Mosquitto
// (internal/brokertest), and prints one markdown table.
//
//	drain       a 20 000-reading backlog in [buffer] dir vs mosquitto_pub -l
//	            sending as many same-size QoS 1 messages (msgs/s, ratio)
//	steady      RSS and CPU of the agent with 5 sim sensors at 1 Hz over a
//	            60 s window, beside an idle mosquitto_sub on the same topics
//	start       process start → first telemetry seen, vs one mosquitto_pub
//	rtt         command round trips (ping) vs a broker echo, p50/p99
//	peak RSS    VmHWM of the agent while draining the backlog
//	size        the agent built as shipped for linux/amd64 and linux/arm64
//
// Every message is counted by an independent MQTT v5 subscriber (paho, the
// "monitor" identity, QoS 1) in this process, so the agent and its
// reference are timed the same way. A measure whose tool is missing is
// skipped with the reason; a measure that cannot finish is reported as
// FAILED and makes Run return an error. A goal missed is a result, not an
// error.
//
//	err := benchsuite.Run(ctx, []string{"-out", "docs/bench.md"}, os.Stdout, os.Stderr)
package benchsuite

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/edgeagent/agent/internal/atomicfile"
	"github.com/edgeagent/agent/internal/brokertest"
)

// Backlog is how many readings the drain measure sends, each way.
const Backlog = 20000

// Options tune one run.
type Options struct {
	Out      string        // also write the report here ("" only prints it)
	AgentBin string        // run this binary instead of building one
	Window   time.Duration // steady-state window
	Runs     int           // drain runs each way (the median is reported)
	Starts   int           // agent starts for start → first telemetry
	Pings    int           // command round trips each way
	Log      *slog.Logger
}

// Run parses args (flags of `agent-bench`), runs the suite, prints the
// report to stdout and progress to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "also write the report to this file (e.g. docs/bench.md)")
	agentBin := fs.String("agent", "", "agent binary to measure (default: build ./cmd/agent as shipped)")
	quick := fs.Bool("quick", false, "development run: 10 s steady window, 1 drain run, fewer starts and pings")
	runs := fs.Int("runs", 0, "drain runs each way, median reported (default 3, 1 with -quick)")
	verbose := fs.Bool("v", false, "debug progress on stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: agent-bench [-quick] [-out FILE] [-agent BIN] [-runs N]\n\n"+
			"Measures the agent beside mosquitto_pub/mosquitto_sub on one mutual-TLS Mosquitto\n"+
			"and prints a markdown table. Takes about 2 minutes (the steady window is 60 s).\n\n")
		fs.PrintDefaults()
	}
	readme := fs.String("readme", "", "also put the table between the bench markers of this file (README.md)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	o := Options{Out: *out, AgentBin: *agentBin, Window: 60 * time.Second, Runs: 3, Starts: 11, Pings: 1000,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	if *quick {
		o.Window, o.Runs, o.Starts, o.Pings = 10*time.Second, 1, 5, 200
	}
	if *runs > 0 {
		o.Runs = *runs
	}
	rep, err := Measure(ctx, o)
	if rep != nil {
		text := rep.Markdown()
		fmt.Fprint(stdout, text)
		if o.Out != "" {
			if werr := atomicfile.WriteFile(o.Out, []byte(text), 0o644); werr != nil {
				err = errors.Join(err, fmt.Errorf("write %s: %w", o.Out, werr))
			}
		}
		if *readme != "" {
			if werr := replaceBlock(*readme, text); werr != nil {
				err = errors.Join(err, werr)
			}
		}
	}
	return err
}

// Markers of the block replaceBlock rewrites (the README's latest table).
const (
	blockStart = "<!-- bench:start -->"
	blockEnd   = "<!-- bench:end -->"
)

// replaceBlock puts text between the markers in path.
func replaceBlock(path, text string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(data)
	i, j := strings.Index(s, blockStart), strings.Index(s, blockEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s … %s block to put the table in", path, blockStart, blockEnd)
	}
	s = s[:i+len(blockStart)] + "\n" + text + s[j:]
	return atomicfile.WriteFile(path, []byte(s), 0o644)
}

// Measure runs every measure and returns the report, with an error that
// joins the measures that failed.
func Measure(ctx context.Context, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	tmp, err := os.MkdirTemp("", "agent-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	rep := &Report{Machine: describeMachine(ctx, time.Now())}
	s := &suite{o: o, tmp: tmp, log: o.Log, rep: rep, proc: procFS{"/proc"}}
	defer s.cleanup()

	s.buildAll(ctx)
	if ctx.Err() == nil {
		s.withBroker(ctx)
	}
	s.sizes()
	if ctx.Err() != nil {
		rep.skipRest("interrupted")
		return rep, nil // cancellation is a clean exit
	}
	return rep, errors.Join(s.failures...)
}

// suite is one run's shared state.
type suite struct {
	o        Options
	tmp      string
	log      *slog.Logger
	rep      *Report
	proc     procFS
	failures []error

	agentBin  string // what runs here
	buildErr  error
	sizeBins  map[string]string // GOARCH → built binary
	sizeErrs  map[string]error
	toCleanup []func()
}

func (s *suite) cleanup() {
	for i := len(s.toCleanup) - 1; i >= 0; i-- {
		s.toCleanup[i]()
	}
}

// fail records a measure that could not finish.
func (s *suite) fail(measure string, err error) {
	s.log.Error("measure failed", "measure", measure, "err", err)
	s.failures = append(s.failures, fmt.Errorf("%s: %w", measure, err))
}

// withBroker runs the measures that need Mosquitto.
func (s *suite) withBroker(ctx context.Context) {
	names := []string{mDrainAcked, mCeiling, mDrainFirst, mDrainStart, mPeakRSS, mStart, mRTT50, mRTT99, mSteadyRSS, mSteadyCPU}
	skipAll := func(why string) {
		for _, n := range names {
			s.rep.add(skipped(n, why))
		}
	}
	if s.buildErr != nil {
		skipAll("no agent binary: " + s.buildErr.Error())
		return
	}
	if err := brokertest.Available(); err != nil {
		skipAll(err.Error())
		return
	}
	e, err := s.newEnv(ctx)
	if err != nil {
		s.fail("broker", err)
		for _, n := range names {
			s.rep.add(failed(n, "broker: "+err.Error()))
		}
		return
	}
	for _, m := range []func(context.Context, *env){s.drain, s.startToFirst, s.roundTrips, s.steady} {
		if ctx.Err() != nil {
			return
		}
		m(ctx, e)
	}
}

func (s *suite) path(name string) string { return filepath.Join(s.tmp, name) }

func hostArch() string { return runtime.GOARCH }
