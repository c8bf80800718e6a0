package benchsuite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
)

// The measures, in table order.
const (
	mDrainAcked = "drain 20 000-reading backlog, process start → broker acknowledged all, no subscriber (msgs/s)"
	mCeiling    = "broker intake ceiling: 2 × mosquitto_pub -l in parallel, aggregate (msgs/s)"
	mDrainFirst = "drain 20 000-reading backlog, first → 20 000th delivered (msgs/s)"
	mDrainStart = "drain 20 000-reading backlog, process start → 20 000th delivered (msgs/s)"
	mPeakRSS    = "peak RSS while draining (VmHWM; ref: mosquitto_pub -l maxrss)"
	mSteadyRSS  = "steady RSS, 5 sim sensors × 1 Hz (VmRSS at window end; ref: mosquitto_sub)"
	mSteadyCPU  = "steady CPU over the window, % of one core (ref: mosquitto_sub)"
	mStart      = "process start → first telemetry delivered, median (ref: one mosquitto_pub)"
	mRTT50      = "command round trip p50, ping (ref: broker echo)"
	mRTT99      = "command round trip p99, ping (ref: broker echo)"
	mSizeAMD64  = "binary size linux/amd64 (CGO_ENABLED=0, -trimpath, -s -w)"
	mSizeARM64  = "binary size linux/arm64 (CGO_ENABLED=0, -trimpath, -s -w)"
)

var order = []string{mDrainAcked, mCeiling, mDrainFirst, mDrainStart, mPeakRSS, mSteadyRSS, mSteadyCPU, mStart, mRTT50, mRTT99, mSizeAMD64, mSizeARM64}

// Row is one line of the table.
type Row struct {
	Measure, Agent, Reference, Goal, Verdict string
}

func skipped(measure, why string) Row {
	return Row{Measure: measure, Agent: "—", Reference: "—", Goal: "—", Verdict: "skipped: " + why}
}

func failed(measure, why string) Row {
	return Row{Measure: measure, Agent: "—", Reference: "—", Goal: "—", Verdict: "FAILED: " + brief(why)}
}

// Report is the header line and the rows.
type Report struct {
	Machine string
	Rows    []Row
}

func (r *Report) add(row Row) { r.Rows = append(r.Rows, row) }

// skipRest adds a skipped row for every measure not in the table yet.
func (r *Report) skipRest(why string) {
	for _, m := range order {
		if !slices.ContainsFunc(r.Rows, func(x Row) bool { return x.Measure == m }) {
			r.add(skipped(m, why))
		}
	}
}

// Markdown renders the header line and one table, rows in the fixed order.
func (r *Report) Markdown() string {
	rows := slices.Clone(r.Rows)
	rank := func(m string) int {
		if i := slices.Index(order, m); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(rows, func(a, b Row) int { return rank(a.Measure) - rank(b.Measure) })
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", r.Machine)
	b.WriteString("| measure | agent | reference | ratio/goal | verdict |\n|---|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
	for _, x := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(x.Measure), cell(x.Agent), cell(x.Reference), cell(x.Goal), cell(x.Verdict))
	}
	return b.String()
}

// describeMachine is the header line: date, CPU, cores, kernel, versions.
func describeMachine(ctx context.Context, now time.Time) string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		cpu = cpuModel(data)
	}
	kernel := "unknown kernel"
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(data))
	}
	goVer := runtime.Version()
	if out, err := commandOutput(ctx, goTool(), "env", "GOVERSION"); err == nil && out != "" {
		goVer = out
	}
	mosq := "mosquitto not installed"
	// `mosquitto -h` prints its version first and exits 3.
	if out, _ := commandOutput(ctx, brokertest.MosquittoPath, "-h"); strings.HasPrefix(out, "mosquitto version ") {
		mosq = "mosquitto " + strings.TrimPrefix(firstLine(out), "mosquitto version ")
	}
	rev := ""
	if out, err := commandOutput(ctx, "git", "describe", "--always", "--dirty"); err == nil && out != "" {
		rev = ", agent at " + out
	}
	return fmt.Sprintf("Benchmarks of %s: %s, %d cores, %s, %s/%s, %s, %s%s.",
		now.UTC().Format("2006-01-02 15:04 MST"), cpu, runtime.NumCPU(), kernel, runtime.GOOS, runtime.GOARCH, goVer, mosq, rev)
}

// cpuModel finds the CPU's name in /proc/cpuinfo: "model name" on x86,
// "Model" or "Hardware" on ARM boards.
func cpuModel(cpuinfo []byte) string {
	found := map[string]string{}
	for _, line := range strings.Split(string(cpuinfo), "\n") {
		k, v, ok := strings.Cut(line, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if ok && v != "" && found[k] == "" {
			found[k] = v
		}
	}
	for _, k := range []string{"model name", "Model", "Hardware", "cpu model", "CPU part"} {
		if v := found[k]; v != "" {
			return v
		}
	}
	return "unknown CPU"
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

// commandOutput runs a short command (bounded at 10 s) and returns its
// combined output, trimmed.
func commandOutput(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(bytes.TrimSpace(out)), err
}

// goTool is the go command: on PATH, else where the Makefile looks.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// Formatting helpers.

func mib(kib float64) string { return fmt.Sprintf("%.1f MiB", kib/1024) }

func ms(d time.Duration) string {
	f := float64(d.Microseconds()) / 1000
	if f < 10 {
		return fmt.Sprintf("%.2f ms", f)
	}
	return fmt.Sprintf("%.0f ms", f)
}

func rate(n float64) string { return fmt.Sprintf("%.0f msgs/s", n) }

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
