package demo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/internal/testlog"
)

type syncBuf = testlog.Buffer

// TestDemo runs what `make demo` runs, for a few seconds, and checks that a
// newcomer sees telemetry, a command round trip and the offline status.
func TestDemo(t *testing.T) {
	if err := brokertest.Available(); err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(t.TempDir(), "agent")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var out syncBuf
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Run(ctx, Options{AgentBin: bin, Duration: 4 * time.Second, Out: &out}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"telemetry sim1  seq=1", `status    edge/dev1/status {"state":"online"`,
		`reply    ← {"id":"demo-1","ok":true`, "round trip", `{"state":"offline"`, "== done"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
}
