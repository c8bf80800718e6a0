package benchsuite

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procFS reads /proc (a field, so tests can point it at fixtures).
type procFS struct{ root string }

// memInfo is a process's memory from /proc/<pid>/status, in KiB.
type memInfo struct {
	rss, hwm   float64 // VmRSS, VmHWM
	anon, file float64 // RssAnon, RssFile: the heap and stacks vs the mapped binary
}

// mem reads /proc/<pid>/status.
func (p procFS) mem(pid int) (memInfo, error) {
	data, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "status"))
	if err != nil {
		return memInfo{}, err
	}
	m := memInfo{rss: -1, hwm: -1}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = v
		case "VmHWM:":
			m.hwm = v
		case "RssAnon:":
			m.anon = v
		case "RssFile:":
			m.file = v
		}
	}
	if m.rss < 0 || m.hwm < 0 {
		return memInfo{}, fmt.Errorf("no VmRSS/VmHWM in %s/%d/status", p.root, pid)
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture the agent ships for.
const clockTicks = 100

// cpu returns utime+stime of pid.
func (p procFS) cpu(pid int) (time.Duration, error) {
	data, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(data))
}

// parseStatCPU reads fields 14 and 15 (utime, stime) of a stat line. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q stime %q", f[11], f[12])
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// proc is a child process with its output in a file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time // just before the fork
	ended   time.Time // when Wait returned; read after done
	done    chan struct{}
}

// startProc starts argv with stdout and stderr to logPath and stdin from
// stdin (nil: /dev/null). The child is killed if this process dies.
func startProc(logPath string, stdin *os.File, argv ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{name: filepath.Base(argv[0]), cmd: exec.Command(argv[0], argv[1:]...), logPath: logPath, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if stdin != nil {
		p.cmd.Stdin = stdin
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.ended = time.Now()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process politely (SIGTERM, 5 s), then by force.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process at once (a client with nothing to lose).
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// wait waits at most limit for the process to exit by itself.
func (p *proc) wait(ctx context.Context, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("%s: %v: %s", p.name, p.cmd.ProcessState, p.tail())
		}
		return nil
	case <-t.C:
		return fmt.Errorf("%s still running after %v", p.name, limit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxRSS is the peak RSS in KiB of an exited process (getrusage).
func (p *proc) maxRSS() float64 {
	if !p.exited() {
		return 0
	}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss)
	}
	return 0
}

// cpuUsed is the user+system time of an exited process (getrusage).
func (p *proc) cpuUsed() time.Duration {
	if !p.exited() {
		return 0
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// tail is the end of the process's output, for error messages.
func (p *proc) tail() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 1500
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(st.Size()-max, io.SeekStart)
	}
	data, _ := io.ReadAll(f)
	return strings.TrimSpace(string(data))
}
