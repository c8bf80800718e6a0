package benchsuite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
)

// agentPkg is what ships as the agent binary.
const agentPkg = "github.com/edgeagent/agent/cmd/agent"

// buildAll builds the agent as shipped for amd64 and arm64 (in parallel)
// and picks the binary to run here.
func (s *suite) buildAll(ctx context.Context) {
	archs := []string{"amd64", "arm64"}
	if h := hostArch(); s.o.AgentBin == "" && h != "amd64" && h != "arm64" {
		archs = append(archs, h)
	}
	s.sizeBins, s.sizeErrs = map[string]string{}, map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, arch := range archs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := s.path("agent-linux-" + arch)
			t0 := time.Now()
			err := buildAgent(ctx, arch, out)
			s.log.Debug("built", "arch", arch, "took", time.Since(t0).Round(time.Millisecond), "err", err)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.sizeErrs[arch] = err
			} else {
				s.sizeBins[arch] = out
			}
		}()
	}
	s.log.Info("building the agent", "archs", archs)
	wg.Wait()
	if s.o.AgentBin != "" {
		if _, err := os.Stat(s.o.AgentBin); err != nil {
			s.buildErr = err
		}
		s.agentBin = s.o.AgentBin
		return
	}
	s.agentBin, s.buildErr = s.sizeBins[hostArch()], s.sizeErrs[hostArch()]
}

// buildAgent builds ./cmd/agent the way the Makefile ships it.
func buildAgent(ctx context.Context, arch, out string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-ldflags", "-s -w", "-o", out, agentPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for linux/%s: %w: %s", agentPkg, arch, err, strings.TrimSpace(string(msg)))
	}
	return nil
}

// sizes reports the built binaries.
func (s *suite) sizes() {
	for _, m := range []struct{ arch, name string }{{"amd64", mSizeAMD64}, {"arm64", mSizeARM64}} {
		bin, ok := s.sizeBins[m.arch]
		if !ok {
			why := "not built"
			if err := s.sizeErrs[m.arch]; err != nil {
				why = err.Error()
				s.fail(m.name, err)
				s.rep.add(failed(m.name, why))
				continue
			}
			s.rep.add(skipped(m.name, why))
			continue
		}
		st, err := os.Stat(bin)
		if err != nil {
			s.fail(m.name, err)
			s.rep.add(failed(m.name, err.Error()))
			continue
		}
		s.rep.add(Row{Measure: m.name, Agent: fmt.Sprintf("%.2f MiB (%d B)", float64(st.Size())/(1<<20), st.Size()),
			Reference: "—", Goal: "—", Verdict: "info"})
	}
}

// env is the broker side of a run: PKI, Mosquitto, the observer.
type env struct {
	fleet  *brokertest.Fleet
	broker *brokertest.Broker
	dev    brokertest.Creds
	sub    *subscriber
}

func (s *suite) newEnv(ctx context.Context) (*env, error) {
	dir := s.path("pki")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := brokertest.NewFleet(dir)
	if err != nil {
		return nil, fmt.Errorf("PKI: %w", err)
	}
	// max_queued_messages 0: the one measuring subscriber must not have
	// messages dropped by the broker when a drain outruns it (Mosquitto
	// keeps 1000 QoS 1 messages per client by default).
	b, err := f.Start(ctx, brokertest.Options{Extra: "max_queued_messages 0\n"})
	if err != nil {
		return nil, err
	}
	s.toCleanup = append(s.toCleanup, b.Stop)
	dev, err := f.Device("dev1")
	if err != nil {
		return nil, err
	}
	sub, err := dialSubscriber(ctx, f, b, "edge/dev1/telemetry/#")
	if err != nil {
		return nil, err
	}
	s.toCleanup = append(s.toCleanup, sub.close)
	s.log.Info("broker up", "addr", b.Addr)
	return &env{fleet: f, broker: b, dev: dev, sub: sub}, nil
}

// agentConfig writes an agent config with sensors/actuators more and the
// store-and-forward log in bufDir.
func (s *suite) agentConfig(e *env, name, bufDir, more string) (string, error) {
	text := e.fleet.AgentConfig("", e.dev, e.broker.Port, "", fmt.Sprintf("[buffer]\ndir = %q\n\n%s", bufDir, more))
	p := s.path(name + ".toml")
	return p, os.WriteFile(p, []byte(text), 0o644)
}

func sensorsTOML(n int, interval string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[[sensor]]\nname = \"sim%d\"\ntype = \"sim\"\ninterval = %q\n", i+1, interval)
	}
	return b.String() + "[[actuator]]\nname = \"relay1\"\ntype = \"sim\"\n"
}

// mosquittoPub is the argv of mosquitto_pub as the device, QoS 1, MQTT v5.
func (e *env) mosquittoPub(topic string, more ...string) []string {
	args := []string{"mosquitto_pub", "-h", e.broker.Host, "-p", fmt.Sprint(e.broker.Port),
		"--cafile", e.fleet.CAFile, "--cert", e.dev.Cert, "--key", e.dev.Key, "-V", "mqttv5", "-q", "1", "-t", topic}
	return append(args, more...)
}
