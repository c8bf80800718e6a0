package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/agent/doctor"
)

// doctorCmd runs the layered checks of package doctor and prints one line a
// check. Exit 0 when nothing failed (warnings allowed), 1 on a failure, 2
// when the config itself cannot be read (reported as the failing config
// check too, so --json readers see the same shape).
func doctorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "config file (TOML)")
	asJSON := fs.Bool("json", false, "print the results as a JSON array")
	timeout := fs.Duration("timeout", doctor.DefaultTimeout, "bound of each network step")
	if err := fs.Parse(args); err != nil {
		return ExitRefused
	}
	if fs.NArg() > 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "agent doctor: takes only flags; --timeout > 0")
		return ExitRefused
	}
	var (
		rs   []doctor.Result
		code = ExitOK
	)
	cfg, err := config.Load(*path)
	if err != nil {
		rs, code = doctor.ConfigFailed(err), ExitRefused
	} else {
		rs = doctor.Run(ctx, cfg, doctor.Options{Timeout: *timeout, Now: time.Now})
		if doctor.Failed(rs) {
			code = ExitFailure
		}
	}
	if *asJSON {
		if err := printJSONList(stdout, rs); err != nil {
			fmt.Fprintf(stderr, "agent doctor: %v\n", err)
			return ExitFailure
		}
		return code
	}
	printDoctor(stdout, rs)
	return code
}

func printDoctor(w io.Writer, rs []doctor.Result) {
	width := 0
	for _, r := range rs {
		width = max(width, len(r.Check))
	}
	for _, r := range rs {
		fmt.Fprintf(w, "%-4s  %-*s  %s\n", strings.ToUpper(r.Status), width, r.Check, r.Detail)
		if (r.Status == doctor.Warn || r.Status == doctor.Fail) && r.Fix != "" {
			fmt.Fprintf(w, "      %-*s  fix: %s\n", width, "", r.Fix)
		}
	}
}
