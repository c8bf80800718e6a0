// Package testexec lets tests re-run their own test binary (the helper
// process pattern) also when the tests run under an emulator: `make
// test-arm` runs arm64 and armv7 test binaries with qemu-user, and a child
// started from such a binary needs the emulator in front of it too, since
// this machine has no binfmt_misc registration.
package testexec

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// EmulatorEnv names the variable holding the emulator (`make test-arm` sets
// it to qemu-aarch64-static or qemu-arm-static).
const EmulatorEnv = "AGENT_TEST_EMULATOR"

// Self returns the command line that runs this test binary: the emulator,
// if any, then the binary.
func Self() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if emu := os.Getenv(EmulatorEnv); emu != "" {
		return []string{emu, exe}, nil
	}
	return []string{exe}, nil
}

// Helper returns a command that runs this test binary again as the helper
// test named by run (the helper process pattern), through wrap (unshare,
// say) when given, with env added to its environment. The child ends with
// ctx; its pipes are closed at most 5 s after it is killed.
func Helper(ctx context.Context, run string, env []string, wrap ...string) (*exec.Cmd, error) {
	self, err := Self()
	if err != nil {
		return nil, err
	}
	args := append(append(wrap, self...), "-test.run=^"+run+"$", "-test.v")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

// MountNamespace reports why this process cannot make a private mount
// namespace and mount in it (probed with script, run as `sh -c script
// DIR` inside `unshare -m`), or "" when it can.
func MountNamespace(script string) string {
	if os.Geteuid() != 0 {
		return "needs root to mount in a private mount namespace (run the tests as root to cover it)"
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return "no unshare(1) to create a mount namespace"
	}
	dir, err := os.MkdirTemp("", "mountns-")
	if err != nil {
		return err.Error()
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "unshare", "-m", "sh", "-c", script, dir).CombinedOutput(); err != nil {
		return fmt.Sprintf("unshare -m with a mount is not permitted here: %v: %s", err, bytes.TrimSpace(out))
	}
	return ""
}
