package benchsuite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTelemetryPayload(t *testing.T) {
	want := len(telemetryPayload(1))
	if want < 140 || want > 160 {
		t.Errorf("payload is %d bytes, want about 150", want)
	}
	for _, seq := range []int{1, 9, 10, 99, 100, 12345, Backlog} {
		p := telemetryPayload(seq)
		if len(p) != want {
			t.Errorf("payload %d is %d bytes, want %d: %s", seq, len(p), want, p)
		}
		if got := parseSeq(p); got != seq {
			t.Errorf("parseSeq(%s) = %d, want %d", p, got, seq)
		}
	}
}

func TestParseSeq(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{`{"seq":7}`, 7},
		{`{"seq":   42,"x":1}`, 42},
		{`{"seq":"7"}`, -1},
		{`{"sequence":1}`, -1},
		{`{}`, -1},
		{`{"seq":99999999999999}`, 9999999999}, // stops at ten digits
	} {
		if got := parseSeq([]byte(c.in)); got != c.want {
			t.Errorf("parseSeq(%s) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestWatch(t *testing.T) {
	w := &watch{prefix: "edge/dev1/telemetry/sim1", want: 3, done: make(chan struct{}), seen: make([]bool, 4)}
	t0 := time.Now()
	for i, seq := range []int{9, 1, 1, 3, 2, 2} {
		w.see(t0.Add(time.Duration(i)*time.Second), "edge/dev1/telemetry/sim1", telemetryPayload(seq))
	}
	w.see(t0, "edge/dev1/status", []byte(`{"seq":1}`))
	st := w.stats()
	if st.unique != 3 || st.dups != 1 || st.stray != 2 || st.outOfOrder != 1 || st.total != 6 {
		t.Errorf("stats = %+v", st)
	}
	if got := st.first.Sub(t0); got != time.Second {
		t.Errorf("first at +%v, want +1s (the stray seq 9 is not timed)", got)
	}
	if got := st.last.Sub(t0); got != 4*time.Second {
		t.Errorf("last at +%v, want +4s (the third distinct reading)", got)
	}
	select {
	case <-w.done:
	default:
		t.Error("done not closed")
	}
}

func TestProcFS(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	status := "Name:\tagent\nVmHWM:\t   16900 kB\nVmRSS:\t   11600 kB\nRssAnon:\t    6000 kB\nRssFile:\t    5600 kB\n"
	// The command name may hold spaces and parentheses.
	stat := "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 5 0 100 0 0\n"
	for name, text := range map[string]string{"status": status, "stat": stat} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := procFS{root}
	m, err := p.mem(42)
	if err != nil {
		t.Fatal(err)
	}
	if want := (memInfo{rss: 11600, hwm: 16900, anon: 6000, file: 5600}); m != want {
		t.Errorf("mem = %+v, want %+v", m, want)
	}
	cpu, err := p.cpu(42)
	if err != nil {
		t.Fatal(err)
	}
	if cpu != 3250*time.Millisecond {
		t.Errorf("cpu = %v, want 3.25s (325 ticks)", cpu)
	}
	if _, err := p.mem(43); err == nil {
		t.Error("mem of a missing pid: no error")
	}
}

func TestCPUModel(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n", "AMD EPYC"},
		{"processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n", "Raspberry Pi 4 Model B Rev 1.4"},
		{"", "unknown CPU"},
	} {
		if got := cpuModel([]byte(c.in)); got != c.want {
			t.Errorf("cpuModel = %q, want %q", got, c.want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	r := &Report{Machine: "Benchmarks of today."}
	r.add(Row{Measure: mSizeAMD64, Agent: "9 MiB", Reference: "—", Goal: "—", Verdict: "info"})
	r.add(failed(mDrainAcked, "agent: 3 of 20000 readings\nagent log: …"))
	r.skipRest("interrupted")
	got := r.Markdown()
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if lines[0] != "Benchmarks of today." || lines[2] != "| measure | agent | reference | ratio/goal | verdict |" {
		t.Errorf("header:\n%s", got)
	}
	if n := len(lines) - 4; n != len(order) {
		t.Errorf("%d rows, want %d:\n%s", n, len(order), got)
	}
	if !strings.HasPrefix(lines[4], "| "+mDrainAcked+" ") || !strings.Contains(lines[4], "FAILED: agent: 3 of 20000 readings |") {
		t.Errorf("first row = %q, want the failed drain on one line", lines[4])
	}
	if !strings.Contains(got, "| "+mSizeAMD64+" | 9 MiB |") || !strings.Contains(got, "skipped: interrupted") {
		t.Errorf("table:\n%s", got)
	}
}
