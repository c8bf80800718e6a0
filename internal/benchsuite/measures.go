package benchsuite

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/internal/requester"
)

// startToFirst times process start → first telemetry seen, for the agent
// (one sensor, a fresh buffer dir each start) and for one mosquitto_pub of
// the same reading as the same device.
func (s *suite) startToFirst(ctx context.Context, e *env) {
	s.log.Info("start → first telemetry", "starts", s.o.Starts)
	agent, aerr := s.timeStarts(ctx, func(i int) (*proc, error) {
		cfg, err := s.agentConfig(e, fmt.Sprintf("start-%d", i), s.path(fmt.Sprintf("start-buf-%d", i)), sensorsTOML(1, "200ms"))
		if err != nil {
			return nil, err
		}
		return startProc(s.path(fmt.Sprintf("start-%d.log", i)), nil, s.agentBin, "run", "--config", cfg)
	}, e)
	pub, perr := s.timeStarts(ctx, func(i int) (*proc, error) {
		return startProc(s.path(fmt.Sprintf("start-pub-%d.log", i)), nil, e.mosquittoPub(drainTopic, "-m", string(telemetryPayload(1)))...)
	}, e)
	if ctx.Err() != nil {
		return
	}
	if aerr != nil {
		s.fail("start → first telemetry (agent)", aerr)
		s.rep.add(failed(mStart, aerr.Error()))
		return
	}
	ref := "—"
	var rv time.Duration
	if perr != nil {
		s.fail("start → first telemetry (mosquitto_pub)", perr)
		ref = "FAILED: " + brief(perr.Error())
	} else {
		rv = median(pub)
		ref = "mosquitto_pub: " + ms(rv)
	}
	av := median(agent)
	s.rep.add(Row{Measure: mStart, Agent: fmt.Sprintf("%s (median of %d)", ms(av), len(agent)), Reference: ref,
		Goal: ratio(float64(av), float64(rv)), Verdict: "info"})
}

// timeStarts starts a publisher o.Starts times and returns start → its
// reading with seq 1 seen, each.
func (s *suite) timeStarts(ctx context.Context, start func(i int) (*proc, error), e *env) ([]time.Duration, error) {
	var out []time.Duration
	for i := range s.o.Starts {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		w := e.sub.watch(drainTopic, 1)
		p, err := start(i)
		if err != nil {
			return nil, err
		}
		err = w.wait(ctx, 20*time.Second)
		p.stop()
		if err != nil {
			return nil, fmt.Errorf("%s: %w; output:\n%s", p.name, err, p.tail())
		}
		out = append(out, w.stats().first.Sub(p.started))
	}
	return out, nil
}

// roundTrips pings the agent o.Pings times through the broker, and the
// broker alone (a message to the requester's own reply topic) as often.
func (s *suite) roundTrips(ctx context.Context, e *env) {
	s.log.Info("command round trips", "pings", s.o.Pings)
	agent, ref, err := s.measureRTT(ctx, e)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.fail("command round trip", err)
		s.rep.add(failed(mRTT50, err.Error()))
		s.rep.add(failed(mRTT99, err.Error()))
		return
	}
	q := func(d []time.Duration, p float64) time.Duration { return d[int(p*float64(len(d)-1))] }
	for _, m := range []struct {
		name string
		p    float64
	}{{mRTT50, 0.50}, {mRTT99, 0.99}} {
		a, r := q(agent, m.p), q(ref, m.p)
		verdict := "info"
		if a >= 40*time.Millisecond {
			verdict = "looks like a 40 ms delayed-ACK stall (set_tcp_nodelay?)"
		}
		s.rep.add(Row{Measure: m.name, Agent: fmt.Sprintf("%s (%d pings)", ms(a), len(agent)), Reference: ms(r),
			Goal: ratio(float64(a), float64(r)), Verdict: verdict})
	}
}

func (s *suite) measureRTT(ctx context.Context, e *env) (agent, ref []time.Duration, err error) {
	cfg, err := s.agentConfig(e, "rtt", s.path("rtt-buf"), sensorsTOML(1, "1s"))
	if err != nil {
		return nil, nil, err
	}
	p, err := startProc(s.path("rtt.log"), nil, s.agentBin, "run", "--config", cfg)
	if err != nil {
		return nil, nil, err
	}
	defer p.stop()
	const reply = "edge/dev1/reply/bench"
	req, err := requester.New(ctx, e.fleet, e.broker, e.fleet.Ops, reply)
	if err != nil {
		return nil, nil, err
	}
	defer req.Close()
	// Until it answers: connected and subscribed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, _, err := req.Call(cctx, "edge/dev1/cmd", []byte(`{"id":"warm","action":"ping"}`))
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) || p.exited() {
			return nil, nil, fmt.Errorf("agent does not answer a ping within 20 s: %v; agent log:\n%s", err, p.tail())
		}
	}
	calls := func(topic string, payload func(i int) []byte) ([]time.Duration, error) {
		out := make([]time.Duration, 0, s.o.Pings)
		for i := range s.o.Pings {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, rtt, err := req.Call(cctx, topic, payload(i))
			cancel()
			if err != nil {
				return nil, fmt.Errorf("call %d on %s: %w", i, topic, err)
			}
			out = append(out, rtt)
		}
		slices.Sort(out)
		return out, nil
	}
	if agent, err = calls("edge/dev1/cmd", func(i int) []byte { return fmt.Appendf(nil, `{"id":"b%d","action":"ping"}`, i) }); err != nil {
		return nil, nil, err
	}
	if ref, err = calls(reply, func(int) []byte { return []byte("x") }); err != nil {
		return nil, nil, err
	}
	return agent, ref, nil
}

// steady runs the agent with 5 sim sensors at 1 Hz and, beside it, a
// mosquitto_sub on the same telemetry; over the window it takes the CPU
// time (utime+stime) both used and their RSS at the end.
func (s *suite) steady(ctx context.Context, e *env) {
	s.log.Info("steady state", "window", s.o.Window)
	r, err := s.measureSteady(ctx, e)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.fail("steady state", err)
		s.rep.add(failed(mSteadyRSS, err.Error()))
		s.rep.add(failed(mSteadyCPU, err.Error()))
		return
	}
	win := s.o.Window.Round(time.Second)
	rssVerdict, cpuVerdict := "ok", "ok"
	if r.agent.rss >= 10*1024 {
		rssVerdict = "MISS"
	}
	agentPct := 100 * r.agentCPU.Seconds() / r.window.Seconds()
	if agentPct >= 0.5 {
		cpuVerdict = "MISS"
	}
	seen := fmt.Sprintf("; %d readings seen in %v (%d expected)", r.readings, win, 5*int(win.Seconds()))
	refRSS := fmt.Sprintf("mosquitto_sub: %s (anon %.1f + file %.1f)", mib(r.sub.rss), r.sub.anon/1024, r.sub.file/1024)
	refCPU := fmt.Sprintf("mosquitto_sub: %.2f %%", 100*r.subCPU.Seconds()/r.window.Seconds())
	if r.noRef {
		refRSS, refCPU = "skipped: stdbuf not installed", "skipped: stdbuf not installed"
	}
	s.rep.add(Row{Measure: mSteadyRSS, Agent: fmt.Sprintf("%s (anon %.1f + file %.1f; %v window)", mib(r.agent.rss), r.agent.anon/1024, r.agent.file/1024, win),
		Reference: refRSS,
		Goal:      "goal < 10 MiB", Verdict: rssVerdict})
	s.rep.add(Row{Measure: mSteadyCPU, Agent: fmt.Sprintf("%.2f %% (%v of CPU)", agentPct, r.agentCPU),
		Reference: refCPU,
		Goal:      "goal < 0.5 %", Verdict: cpuVerdict + seen})
}

type steadyResult struct {
	window           time.Duration
	agent, sub       memInfo
	agentCPU, subCPU time.Duration
	readings         int
	noRef            bool // stdbuf missing: no mosquitto_sub beside it
}

func (s *suite) measureSteady(ctx context.Context, e *env) (steadyResult, error) {
	cfg, err := s.agentConfig(e, "steady", s.path("steady-buf"), sensorsTOML(5, "1s"))
	if err != nil {
		return steadyResult{}, err
	}
	// The reference: a C client receiving the same telemetry (brokertest
	// runs it under stdbuf).
	var ref *brokertest.Sub
	if _, err := exec.LookPath("stdbuf"); err != nil {
		s.log.Warn("steady state without its reference: stdbuf (coreutils) not installed")
	} else {
		ref, err = e.fleet.Client(e.broker, e.fleet.Monitor).Subscribe(ctx, "edge/dev1/telemetry/#")
		if err != nil {
			return steadyResult{}, fmt.Errorf("mosquitto_sub: %w", err)
		}
		defer ref.Stop()
		go func() {
			for range ref.Lines { // keep its pipe flowing
			}
		}()
	}
	refCPU := func() (time.Duration, error) {
		if ref == nil {
			return 0, nil
		}
		return s.proc.cpu(ref.Pid())
	}
	refMem := func() (memInfo, error) {
		if ref == nil {
			return memInfo{}, nil
		}
		return s.proc.mem(ref.Pid())
	}
	first := e.sub.watch("edge/dev1/telemetry/", 0)
	p, err := startProc(s.path("steady.log"), nil, s.agentBin, "run", "--config", cfg)
	if err != nil {
		return steadyResult{}, err
	}
	defer p.stop()
	// Wait for the first readings, then one more second so start-up is
	// not in the window.
	settle := time.NewTimer(20 * time.Second)
	defer settle.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for first.stats().total == 0 {
		select {
		case <-ctx.Done():
			return steadyResult{}, ctx.Err()
		case <-settle.C:
			return steadyResult{}, fmt.Errorf("no telemetry within 20 s; agent log:\n%s", p.tail())
		case <-tick.C:
		}
	}
	if err := pause(ctx, time.Second); err != nil {
		return steadyResult{}, err
	}

	w := e.sub.watch("edge/dev1/telemetry/", 0)
	a0, err1 := s.proc.cpu(p.pid())
	r0, err2 := refCPU()
	t0 := time.Now()
	if err := errors.Join(err1, err2); err != nil {
		return steadyResult{}, err
	}
	if err := pause(ctx, s.o.Window); err != nil {
		return steadyResult{}, err
	}
	if p.exited() {
		return steadyResult{}, fmt.Errorf("agent exited during the window; log:\n%s", p.tail())
	}
	a1, err1 := s.proc.cpu(p.pid())
	r1, err2 := refCPU()
	win := time.Since(t0)
	aMem, err3 := s.proc.mem(p.pid())
	rMem, err4 := refMem()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return steadyResult{}, err
	}
	// mosquitto_sub runs under stdbuf, which execs it: same pid.
	return steadyResult{window: win, agent: aMem, sub: rMem, agentCPU: a1 - a0, subCPU: r1 - r0, readings: w.stats().total, noRef: ref == nil}, nil
}

// pause waits d: a measurement window, not synchronisation.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
