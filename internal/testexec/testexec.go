// Package testexec lets tests re-run their own test binary (the helper
// process pattern) also when the tests run under an emulator: `make
// test-arm` runs arm64 and armv7 test binaries with qemu-user, and a child
// started from such a binary needs the emulator in front of it too, since
// this machine has no binfmt_misc registration.
package testexec

import "os"

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
