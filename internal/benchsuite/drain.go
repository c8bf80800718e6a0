package benchsuite

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/edgeagent/agent/agent/buffer"
)

const drainTopic = "edge/dev1/telemetry/sim1"

// sinkTopic has no subscriber: the acknowledged-drain runs measure the
// sender and the broker's intake, not its fan-out.
const sinkTopic = "edge/dev1/sink" // outside the subscriber's edge/dev1/telemetry/#

// payloadBase is when the backlog's readings were taken (one each 200 ms).
var payloadBase = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

// telemetryPayload is reading seq as the agent publishes it (docs/wire.md).
// seq is right-aligned after the colon (JSON allows the spaces), so every
// payload of the backlog has the same size.
func telemetryPayload(seq int) []byte {
	ts := payloadBase.Add(time.Duration(seq) * 200 * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	t := 18 + float64(seq%700)/100
	h := 40 + float64(seq%1300)/100
	return fmt.Appendf(nil, `{"ts":%q,"sensor":"sim1","type":"sim","seq":%5d,"values":{"temperature_c":%5.2f,"humidity_pct":%5.2f,"pressure_hpa":1013.25}}`, ts, seq, t, h)
}

// prefill writes the backlog into a new buffer dir through the agent's
// own log, as if the agent had been offline for the readings.
func prefill(dir string, n int) error { return prefillTopic(dir, n, drainTopic) }

func prefillTopic(dir string, n int, topic string) error {
	l, err := buffer.Open(buffer.Options{Dir: dir, MaxBytes: 64 << 20, Sync: buffer.SyncPolicy("batch"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("open buffer %s: %w", dir, err)
	}
	for seq := 1; seq <= n; seq++ {
		if _, err := l.Append(buffer.Record{Topic: topic, Payload: telemetryPayload(seq), Sensor: "sim1", Seq: uint64(seq)}); err != nil {
			l.Close()
			return fmt.Errorf("append reading %d to %s: %w", seq, dir, err)
		}
	}
	return l.Close()
}

// drainRun is one timed drain.
type drainRun struct {
	fromStart, fromFirst time.Duration // to the last of the Backlog readings
	acked                time.Duration // process start → the broker acknowledged the last one
	peakKiB              float64
	dups, outOfOrder     int
	cpu                  time.Duration // CPU time the sender used
}

func (r drainRun) rateFromStart() float64 { return Backlog / r.fromStart.Seconds() }

func (r drainRun) rateAcked() float64 { return Backlog / r.acked.Seconds() }

// The first message is not in the interval: Backlog-1 gaps.
func (r drainRun) rateFromFirst() float64 { return (Backlog - 1) / r.fromFirst.Seconds() }

const drainLimit = 90 * time.Second

// drainAgent starts the agent on a prefilled buffer and times it.
func (s *suite) drainAgent(ctx context.Context, e *env, run int) (drainRun, error) {
	dir := s.path(fmt.Sprintf("backlog-%d", run))
	t0 := time.Now()
	if err := prefill(dir, Backlog); err != nil {
		return drainRun{}, err
	}
	s.log.Debug("backlog written", "dir", dir, "took", time.Since(t0).Round(time.Millisecond))
	cfg, err := s.agentConfig(e, fmt.Sprintf("drain-%d", run), dir, "")
	if err != nil {
		return drainRun{}, err
	}
	w := e.sub.watch(drainTopic, Backlog)
	p, err := startProc(s.path(fmt.Sprintf("drain-%d.log", run)), nil, s.agentBin, "run", "--config", cfg)
	if err != nil {
		return drainRun{}, err
	}
	defer p.stop()
	if err := w.wait(ctx, drainLimit); err != nil {
		return drainRun{}, fmt.Errorf("agent: %w; agent log:\n%s", err, p.tail())
	}
	m, err := s.proc.mem(p.pid())
	if err != nil {
		return drainRun{}, fmt.Errorf("agent memory: %w", err)
	}
	cpu, err := s.proc.cpu(p.pid())
	if err != nil {
		return drainRun{}, fmt.Errorf("agent CPU: %w", err)
	}
	st := w.stats()
	acked, err := deliveredAt(ctx, p.logPath)
	if err != nil {
		return drainRun{}, fmt.Errorf("agent: %w; agent log:\n%s", err, p.tail())
	}
	return drainRun{fromStart: st.last.Sub(p.started), fromFirst: st.last.Sub(st.first), acked: acked.Sub(p.started), peakKiB: m.hwm,
		dups: st.dups, outOfOrder: st.outOfOrder, cpu: cpu}, nil
}

// ackedAgent times the agent draining a backlog on sinkTopic until the
// broker has acknowledged all of it.
func (s *suite) ackedAgent(ctx context.Context, e *env, run int) (time.Duration, error) {
	dir := s.path(fmt.Sprintf("sink-%d", run))
	if err := prefillTopic(dir, Backlog, sinkTopic); err != nil {
		return 0, err
	}
	cfg, err := s.agentConfig(e, fmt.Sprintf("sink-%d", run), dir, "")
	if err != nil {
		return 0, err
	}
	p, err := startProc(s.path(fmt.Sprintf("sink-%d.log", run)), nil, s.agentBin, "run", "--config", cfg)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	t, err := deliveredAtWithin(ctx, p.logPath, drainLimit)
	if err != nil {
		return 0, fmt.Errorf("agent: %w; agent log:\n%s", err, p.tail())
	}
	return t.Sub(p.started), nil
}

// ceiling times two mosquitto_pub -l in parallel (two sink topics) and
// returns their aggregate rate: what the broker takes in at most, here.
func (s *suite) ceiling(ctx context.Context, e *env, lines string) (float64, error) {
	start := time.Now()
	errc := make(chan error, 2)
	for i, topic := range []string{sinkTopic, sinkTopic + "2"} {
		go func() {
			_, err := s.ackedPubTopic(ctx, e, lines, 100+i, topic)
			errc <- err
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			return 0, err
		}
	}
	return 2 * Backlog / time.Since(start).Seconds(), nil
}

// ackedPub times mosquitto_pub -l on sinkTopic until it exits (after its
// last PUBACK).
func (s *suite) ackedPub(ctx context.Context, e *env, lines string, run int) (time.Duration, error) {
	return s.ackedPubTopic(ctx, e, lines, run, sinkTopic)
}

func (s *suite) ackedPubTopic(ctx context.Context, e *env, lines string, run int, topic string) (time.Duration, error) {
	in, err := os.Open(lines)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	p, err := startProc(s.path(fmt.Sprintf("sinkpub-%d.log", run)), in, e.mosquittoPub(topic, "-l")...)
	if err != nil {
		return 0, err
	}
	defer p.kill()
	if err := p.wait(ctx, drainLimit); err != nil {
		return 0, fmt.Errorf("mosquitto_pub -l: %w; output:\n%s", err, p.tail())
	}
	return p.ended.Sub(p.started), nil
}

func deliveredAt(ctx context.Context, logPath string) (time.Time, error) {
	return deliveredAtWithin(ctx, logPath, 10*time.Second)
}

// deliveredAt waits for the agent's "backlog delivered" log line (the
// broker has acknowledged every reading: the log is empty) and returns its
// time.
func deliveredAtWithin(ctx context.Context, logPath string, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		data, _ := os.ReadFile(logPath)
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, "backlog delivered") {
				continue
			}
			ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return time.Time{}, fmt.Errorf("backlog delivered line without a time: %q", line)
			}
			return t, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Time{}, fmt.Errorf(`no "backlog delivered" line within %v`, limit)
		}
		time.Sleep(20 * time.Millisecond) // polling a log file, bounded
	}
}

// drainPub times mosquitto_pub -l sending the same readings from a file.
func (s *suite) drainPub(ctx context.Context, e *env, lines string, run int) (drainRun, error) {
	in, err := os.Open(lines)
	if err != nil {
		return drainRun{}, err
	}
	defer in.Close()
	w := e.sub.watch(drainTopic, Backlog)
	p, err := startProc(s.path(fmt.Sprintf("pub-%d.log", run)), in, e.mosquittoPub(drainTopic, "-l")...)
	if err != nil {
		return drainRun{}, err
	}
	defer p.kill() // mosquitto_pub -l does not end on SIGTERM
	if err := w.wait(ctx, drainLimit); err != nil {
		return drainRun{}, fmt.Errorf("mosquitto_pub -l: %w; output:\n%s", err, p.tail())
	}
	// It exits once its last PUBACK is in; its peak RSS comes with it.
	if err := p.wait(ctx, 10*time.Second); err != nil {
		return drainRun{}, err
	}
	st := w.stats()
	s.log.Debug("mosquitto_pub -l exited", "after_last_seen", p.ended.Sub(st.last).Round(time.Millisecond))
	return drainRun{fromStart: st.last.Sub(p.started), fromFirst: st.last.Sub(st.first), acked: p.ended.Sub(p.started), peakKiB: p.maxRSS(),
		dups: st.dups, outOfOrder: st.outOfOrder, cpu: p.cpuUsed()}, nil
}

// drain runs both, alternating, o.Runs times each, and reports medians.
func (s *suite) drain(ctx context.Context, e *env) {
	lines := s.path("backlog.lines")
	var b bytes.Buffer
	for seq := 1; seq <= Backlog; seq++ {
		b.Write(telemetryPayload(seq))
		b.WriteByte('\n')
	}
	if err := os.WriteFile(lines, b.Bytes(), 0o644); err != nil {
		s.fail("drain", err)
		return
	}
	size := len(telemetryPayload(1))
	var agent, pub []drainRun
	var agentErr, pubErr error
	var agentAck, pubAck []float64
	var agentAckErr, pubAckErr error
	for run := 1; run <= s.o.Runs && ctx.Err() == nil; run++ {
		if agentAckErr == nil {
			if d, err := s.ackedAgent(ctx, e, run); err != nil {
				agentAckErr = err
			} else {
				agentAck = append(agentAck, Backlog/d.Seconds())
				s.log.Info("drain to the broker", "who", "agent", "run", run, "took", d.Round(time.Millisecond), "msgs_per_s", int(Backlog/d.Seconds()))
			}
		}
		if pubAckErr == nil && ctx.Err() == nil {
			if d, err := s.ackedPub(ctx, e, lines, run); err != nil {
				pubAckErr = err
			} else {
				pubAck = append(pubAck, Backlog/d.Seconds())
				s.log.Info("drain to the broker", "who", "mosquitto_pub -l", "run", run, "took", d.Round(time.Millisecond), "msgs_per_s", int(Backlog/d.Seconds()))
			}
		}
		if agentErr == nil {
			r, err := s.drainAgent(ctx, e, run)
			if err != nil {
				agentErr = err
			} else {
				agent = append(agent, r)
				s.log.Info("drain", "who", "agent", "run", run, "from_first", r.fromFirst.Round(time.Millisecond),
					"from_start", r.fromStart.Round(time.Millisecond), "msgs_per_s", int(r.rateFromFirst()),
					"peak_MiB", fmt.Sprintf("%.1f", r.peakKiB/1024), "dups", r.dups, "out_of_order", r.outOfOrder, "cpu", r.cpu)
			}
		}
		if pubErr == nil && ctx.Err() == nil {
			r, err := s.drainPub(ctx, e, lines, run)
			if err != nil {
				pubErr = err
			} else {
				pub = append(pub, r)
				s.log.Info("drain", "who", "mosquitto_pub -l", "run", run, "from_first", r.fromFirst.Round(time.Millisecond),
					"from_start", r.fromStart.Round(time.Millisecond), "msgs_per_s", int(r.rateFromFirst()),
					"peak_MiB", fmt.Sprintf("%.1f", r.peakKiB/1024), "dups", r.dups, "out_of_order", r.outOfOrder, "cpu", r.cpu)
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	if agentErr != nil {
		s.fail("drain (agent)", agentErr)
	}
	if pubErr != nil {
		s.fail("drain (mosquitto_pub -l)", pubErr)
	}
	pick := func(rs []drainRun, f func(drainRun) float64) []float64 {
		var out []float64
		for _, r := range rs {
			out = append(out, f(r))
		}
		return out
	}
	cellRate := func(rs []drainRun, err error, f func(drainRun) float64) (string, float64) {
		if err != nil || len(rs) == 0 {
			return "FAILED", 0
		}
		v := median(pick(rs, f))
		return fmt.Sprintf("%s (median of %d)", rate(v), len(rs)), v
	}
	note := fmt.Sprintf("%d-byte payloads, QoS 1", size)
	if n := len(agent); n > 0 && (agent[n-1].dups > 0 || agent[n-1].outOfOrder > 0) {
		note += fmt.Sprintf("; agent sent %d duplicates, %d out of order", agent[n-1].dups, agent[n-1].outOfOrder)
	}
	// The goal is judged where the sender's work ends: the broker has
	// acknowledged every reading (agent: its log line when the buffer is
	// empty; mosquitto_pub: its exit after the last PUBACK), both from
	// process start, on a topic nobody subscribes to. The subscriber's view
	// follows as information: on a 2-core machine the broker's fan-out to
	// it bounds both senders alike.
	cell := func(v []float64, err error) (string, float64) {
		if err != nil || len(v) == 0 {
			return "FAILED", 0
		}
		m := median(v)
		return fmt.Sprintf("%s (median of %d)", rate(m), len(v)), m
	}
	a, av := cell(agentAck, agentAckErr)
	r, rv := cell(pubAck, pubAckErr)
	row := Row{Measure: mDrainAcked, Agent: a, Reference: "mosquitto_pub -l: " + r}
	switch {
	case av == 0 || rv == 0:
		row.Goal, row.Verdict = "goal ≥ 1.5×", "FAILED: "+firstErr(agentAckErr, pubAckErr)
	case av/rv >= 1.5:
		row.Goal, row.Verdict = ratio(av, rv)+" (goal ≥ 1.5×)", "ok; "+note
	case av/rv >= 1.0:
		row.Goal, row.Verdict = ratio(av, rv)+" (goal ≥ 1.5×)", "below goal (≥ 1.0× floor met); "+note
	default:
		row.Goal, row.Verdict = ratio(av, rv)+" (goal ≥ 1.5×)", "MISS: below the 1.0× floor; "+note
	}
	s.rep.add(row)

	if c, err := s.ceiling(ctx, e, lines); err != nil {
		s.rep.add(failed(mCeiling, brief(err.Error())))
	} else {
		s.rep.add(Row{Measure: mCeiling, Agent: "—", Reference: rate(c), Goal: "—",
			Verdict: "info: the most one sender could reach here; a ratio above " + ratio(c, rv) + " cannot be measured on this machine"})
	}

	a, av = cellRate(agent, agentErr, drainRun.rateFromFirst)
	r, rv = cellRate(pub, pubErr, drainRun.rateFromFirst)
	s.rep.add(Row{Measure: mDrainFirst, Agent: a, Reference: "mosquitto_pub -l: " + r, Goal: ratio(av, rv), Verdict: "info (end to end: bounded by the broker's fan-out to the subscriber)"})

	a, av = cellRate(agent, agentErr, drainRun.rateFromStart)
	r, rv = cellRate(pub, pubErr, drainRun.rateFromStart)
	s.rep.add(Row{Measure: mDrainStart, Agent: a, Reference: "mosquitto_pub -l: " + r, Goal: ratio(av, rv), Verdict: "info (includes start-up and TLS handshake)"})

	if len(agent) == 0 {
		s.rep.add(failed(mPeakRSS, firstErr(agentErr)))
		return
	}
	ref := "—"
	if len(pub) > 0 {
		ref = mib(slicesMax(pick(pub, func(r drainRun) float64 { return r.peakKiB })))
	}
	peak := slicesMax(pick(agent, func(r drainRun) float64 { return r.peakKiB }))
	s.rep.add(Row{Measure: mPeakRSS, Agent: mib(peak) + fmt.Sprintf(" (max of %d)", len(agent)), Reference: ref, Goal: "—", Verdict: "info"})
}

func slicesMax(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// firstErr is the first error, cut to its first line for a table cell
// (the whole of it goes to stderr).
func firstErr(errs ...error) string {
	for _, err := range errs {
		if err != nil {
			return brief(err.Error())
		}
	}
	return "no result"
}

func brief(s string) string {
	s = firstLine(s)
	if r := []rune(s); len(r) > 160 {
		s = string(r[:160]) + "…"
	}
	return s
}
