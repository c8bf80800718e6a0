//go:build unix

package pki

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockFile takes an exclusive flock on path, creating it, and waits at most
// timeout for a holder to let go. flock, not a PID file: the kernel drops
// the lock when its holder dies, so a crash never leaves the CA locked.
// The lock belongs to the open file, so two Dir values in one process
// exclude each other as two processes do.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	deadline := time.Now().Add(timeout)
	// flock has no timeout, and a blocked flock cannot be interrupted, so
	// poll the non-blocking form with a short, growing pause.
	pause := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, kindf(ErrLocked, "%s still locked after %s: another `agent ca` command or the enrollment server is busy with this CA; retry, or find the holder with `fuser %s`", path, timeout, path)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}
