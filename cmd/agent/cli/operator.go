package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/agent/operator"
)

// ExitTimeout is `agent send`'s status when no reply came in time.
const ExitTimeout = 3

// parseInterleaved parses flags that may come after positional arguments
// (`agent send dev1 ping --timeout 2s`) and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// dialOperator loads the config and connects with its certificate.
func dialOperator(ctx context.Context, path string, timeout time.Duration) (*operator.Client, int, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, ExitRefused, err
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := operator.Dial(dctx, cfg)
	if err != nil {
		return nil, ExitFailure, err
	}
	return c, ExitOK, nil
}

// fleetCmd is `agent fleet`: the devices, from their retained statuses.
func fleetCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "config file (the master's: its certificate is used)")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitRefused
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "agent fleet: unexpected argument %q\n", pos[0])
		return ExitRefused
	}
	c, code, err := dialOperator(ctx, *path, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "agent fleet: %v\n", err)
		return code
	}
	defer c.Close()
	fctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	devs, err := c.Fleet(fctx)
	if err != nil {
		fmt.Fprintf(stderr, "agent fleet: %v\n", err)
		return ExitFailure
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].ID < devs[j].ID })
	if *asJSON {
		printJSONList(stdout, devs)
		return ExitOK
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tLAST SEEN\tCERT DAYS\tVERSION\tROLE\tLAST ERROR")
	for _, d := range devs {
		seen, days := "-", "-"
		if !d.LastSeen.IsZero() {
			seen = ago(now.Sub(d.LastSeen))
		}
		if !d.CertExpires.IsZero() {
			days = fmt.Sprintf("%d", int(d.CertExpires.Sub(now).Hours()/24))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.State, seen, days, dash(d.Version), dash(d.Role), dash(d.LastError))
	}
	_ = tw.Flush()
	if len(devs) == 0 {
		fmt.Fprintln(stdout, "(no device has published a status)")
	}
	return ExitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago formats a duration as a person reads it: 4s, 12m, 3h, 2d.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// parseArgs turns key=value words into command args: a value that is JSON
// (a number, true/false, null, a quoted string, an object or array) is
// taken as such, anything else as a string (value=on).
func parseArgs(words []string) (map[string]any, error) {
	if len(words) == 0 {
		return nil, nil
	}
	args := map[string]any{}
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: arguments are key=value, e.g. actuator=relay1 value=on", w)
		}
		var j any
		if err := json.Unmarshal([]byte(v), &j); err == nil {
			args[k] = j
		} else {
			args[k] = v
		}
	}
	return args, nil
}

// sendCmd is `agent send ID ACTION [key=value…]`.
func sendCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "config file (the master's: its certificate is used)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the reply")
	asJSON := fs.Bool("json", false, "print the reply as JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitRefused
	}
	if len(pos) < 2 {
		fmt.Fprintln(stderr, "usage: agent send ID ACTION [key=value...] [--timeout 5s] [--json]\n  e.g. agent send dev1 set actuator=relay1 value=on")
		return ExitRefused
	}
	id, action := pos[0], pos[1]
	cargs, err := parseArgs(pos[2:])
	if err != nil {
		fmt.Fprintf(stderr, "agent send: %v\n", err)
		return ExitRefused
	}
	if !config.ValidID(id) {
		fmt.Fprintf(stderr, "agent send: %q is not a device id (1-64 letters, digits, '.', '_' or '-', starting with a letter or digit)\n", id)
		return ExitRefused
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "agent send: --timeout must be positive")
		return ExitRefused
	}
	c, code, err := dialOperator(ctx, *path, 10*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "agent send: %v\n", err)
		return code
	}
	defer c.Close()
	rep, err := c.Send(ctx, id, action, cargs, *timeout)
	switch {
	case errors.Is(err, operator.ErrTimeout):
		fmt.Fprintf(stderr, "agent send: %v\n", err)
		return ExitTimeout
	case err != nil:
		fmt.Fprintf(stderr, "agent send: %v\n", err)
		return ExitFailure
	}
	if *asJSON {
		fmt.Fprintf(stdout, "%s\n", rep.Raw)
	} else if rep.OK {
		fmt.Fprintf(stdout, "%s %s: ok %s (%.1f ms)\n", id, action, rep.Result, float64(rep.RTT.Microseconds())/1000)
	} else {
		fmt.Fprintf(stdout, "%s %s: failed: %s (%.1f ms)\n", id, action, rep.Error, float64(rep.RTT.Microseconds())/1000)
	}
	if !rep.OK {
		return ExitFailure
	}
	return ExitOK
}

// watchCmd is `agent watch [ID] [--sensor S]`: telemetry as it arrives.
func watchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "config file (the master's: its certificate is used)")
	sensor := fs.String("sensor", "", "only this sensor")
	asJSON := fs.Bool("json", false, "print each reading as a JSON line")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitRefused
	}
	if len(pos) > 1 {
		fmt.Fprintf(stderr, "agent watch: unexpected argument %q (usage: agent watch [ID] [--sensor S])\n", pos[1])
		return ExitRefused
	}
	id := ""
	if len(pos) == 1 {
		id = pos[0]
	}
	c, code, err := dialOperator(ctx, *path, 10*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "agent watch: %v\n", err)
		return code
	}
	defer c.Close()
	err = c.Watch(ctx, id, *sensor, func(r operator.Reading) {
		if *asJSON {
			line, _ := json.Marshal(struct {
				Device  string          `json:"device"`
				Sensor  string          `json:"sensor"`
				Reading json.RawMessage `json:"reading"`
			}{r.Device, r.Sensor, validJSON(r.Payload)})
			fmt.Fprintf(stdout, "%s\n", line)
			return
		}
		fmt.Fprintln(stdout, readable(r))
	})
	if err != nil {
		fmt.Fprintf(stderr, "agent watch: %v\n", err)
		return ExitFailure
	}
	return ExitOK
}

func validJSON(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}

// readable is one reading as a line: time, device/sensor, seq, values or
// the error.
func readable(r operator.Reading) string {
	var m struct {
		TS     string         `json:"ts"`
		Seq    uint64         `json:"seq"`
		Values map[string]any `json:"values"`
		Error  string         `json:"error"`
	}
	if err := json.Unmarshal(r.Payload, &m); err != nil {
		return fmt.Sprintf("%s/%s %q (not a reading)", r.Device, r.Sensor, r.Payload)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s/%s #%d", m.TS, r.Device, r.Sensor, m.Seq)
	if m.Error != "" {
		fmt.Fprintf(&b, " error: %s", m.Error)
		return b.String()
	}
	keys := make([]string, 0, len(m.Values))
	for k := range m.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, m.Values[k])
	}
	return b.String()
}
