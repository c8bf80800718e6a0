package netlab

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stop's grace period after SIGTERM, and how long it then waits after SIGKILL.
const (
	stopGrace = 3 * time.Second
	killWait  = 3 * time.Second
)

// Proc is a process started inside a host's namespace, with its combined
// stdout and stderr captured.
type Proc struct {
	host string
	cmd  *exec.Cmd
	out  outBuf
	done chan struct{}
	err  error // from cmd.Wait; read only after done is closed

	stopOnce sync.Once
	stopErr  error
}

func startProc(host string, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{host: host, cmd: cmd, done: make(chan struct{})}
	p.out.changed = make(chan struct{})
	// One writer for both: exec then shares a single pipe, keeping the order
	// in which the process wrote.
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	// Its own process group, so Stop reaches what it forks (e.g. `sh -c`).
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// A grandchild that keeps the pipe open must not hang Wait.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// String names the process for messages: its host and command line.
func (p *Proc) String() string {
	return fmt.Sprintf("[%s] %s", p.host, strings.Join(p.cmd.Args, " "))
}

// Output returns everything the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error, as
// exec.Cmd.Wait does.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Stop ends the process group: SIGTERM (Avahi then sends its goodbye
// packets), SIGKILL after a grace period. It returns nil once the process is
// gone, whatever its exit status, and an error only if it would not die.
// Calling it again returns the first result.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		select {
		case <-p.done:
			return
		default:
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(stopGrace):
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(killWait):
			p.stopErr = fmt.Errorf("%s: still running %v after SIGKILL", p, killWait)
		}
	})
	return p.stopErr
}

// WaitOutput waits until substr appears in the output (everything written so
// far, not only what comes after the call) and returns the whole line that
// holds its first occurrence, without the newline. It fails when timeout
// passes or the process exits first; the error includes the output.
func (p *Proc) WaitOutput(substr string, timeout time.Duration) (line string, err error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	exited := false
	for {
		out, changed := p.out.snapshot()
		if i := strings.Index(out, substr); i >= 0 {
			start := strings.LastIndexByte(out[:i], '\n') + 1
			end := strings.IndexByte(out[i:], '\n')
			if end < 0 {
				return out[start:], nil
			}
			return out[start : i+end], nil
		}
		if exited {
			return "", fmt.Errorf("%s exited (%v) before writing %q; output:\n%s", p, p.err, substr, out)
		}
		select {
		case <-changed:
		case <-p.done:
			// Wait has returned, so all output has been copied: one last look.
			exited = true
		case <-timer.C:
			return "", fmt.Errorf("%s: no %q after %v; output:\n%s", p, substr, timeout, out)
		}
	}
}

// outBuf collects output and wakes WaitOutput on every write, so waiting
// needs no polling.
type outBuf struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on each write
}

func (b *outBuf) Write(data []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(data)
	close(b.changed)
	b.changed = make(chan struct{})
	return len(data), nil
}

func (b *outBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *outBuf) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}
