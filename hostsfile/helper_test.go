package hostsfile

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/testexec"
)

// Child processes are the test binary run again with these variables set.
const (
	helperEnv     = "HOSTSFILE_TEST_HELPER" // what the child does
	helperPathEnv = "HOSTSFILE_TEST_PATH"   // the file it works on
)

// TestHelperProcess is not a test: other tests run the test binary again
// with helperEnv set, to act in another process (inside a mount namespace,
// or as a writer killed at random moments).
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperPathEnv)
	switch mode := os.Getenv(helperEnv); mode {
	case "":
		t.Skip("only runs as a child of other tests")
	case "write":
		if err := Write(path, []byte(bindMountContent)); err != nil {
			t.Fatal(err)
		}
	case "update":
		changed, _, err := Update(path, brokerPin)
		if err != nil || !changed {
			t.Fatalf("Update: changed=%v err=%v, want true, nil", changed, err)
		}
	case "writer-loop":
		// Alternate the two contents until killed; say when the loop runs.
		a, b := crashContents()
		for i := 0; ; i++ {
			data := a
			if i%2 == 1 {
				data = b
			}
			if err := Write(path, data); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				fmt.Fprintln(os.Stdout, "ready")
			}
		}
	default:
		t.Fatalf("unknown %s=%q", helperEnv, mode)
	}
}

// helperCommand returns a command running the test binary as a helper
// doing mode on path, through wrap (e.g. unshare) when given: wrap's
// arguments are followed by the test binary and its arguments.
func helperCommand(t *testing.T, ctx context.Context, mode, path string, wrap ...string) *exec.Cmd {
	t.Helper()
	cmd, err := testexec.Helper(ctx, "TestHelperProcess", []string{helperEnv + "=" + mode, helperPathEnv + "=" + path}, wrap...)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// boundedContext is the limit for one child process.
func boundedContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// requireMountNamespace skips unless this process may create a mount
// namespace and bind-mount in it.
func requireMountNamespace(t *testing.T) {
	t.Helper()
	if why := testexec.MountNamespace(`mount --bind "$0" "$0"`); why != "" {
		t.Skip("skipped: " + why)
	}
}

func dirNames(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}
