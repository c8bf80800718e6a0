package agent

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// notifySocket is systemd's side of the notify protocol: a real unixgram
// socket whose datagrams arrive on msgs, in order.
type notifySocket struct {
	t    *testing.T
	msgs chan string
	seen []string
}

// listenNotify binds a socket in a temporary directory and points
// NOTIFY_SOCKET at it for the test.
func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{t: t, msgs: make(chan string, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	t.Setenv("NOTIFY_SOCKET", path)
	return s
}

// next waits (bounded) for a datagram with a line starting with prefix and
// returns that line; datagrams passed over are kept in seen.
func (s *notifySocket) next(prefix string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-s.msgs:
			s.seen = append(s.seen, m)
			for _, line := range strings.Split(m, "\n") {
				if strings.HasPrefix(line, prefix) {
					return line
				}
			}
		case <-deadline:
			s.t.Fatalf("no %q from the agent within %v; got %q", prefix, timeout, s.seen)
			return ""
		}
	}
}

func TestNotifyLifecycle(t *testing.T) {
	start := time.Now()
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	e := newEnv(t)
	r := e.start(e.config("dev1", simParts))

	if got := sock.next("READY=1", 5*time.Second); got != "READY=1" {
		t.Fatalf("got %q, want READY=1", got)
	}
	if len(sock.seen) != 1 {
		t.Errorf("READY=1 is not the first message: %q", sock.seen)
	}
	if got := sock.next("STATUS=connected to ", 10*time.Second); !strings.Contains(got, "127.0.0.1:"+strconv.Itoa(e.broker.Port)) {
		t.Errorf("got %q, want the broker's address in it", got)
	}
	for range 2 {
		sock.next("WATCHDOG=1", 2*time.Second)
	}

	e.broker.Stop()
	if got := sock.next("STATUS=broker unreachable: ", 10*time.Second); got == "" {
		t.Fatal("no unreachable status")
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	sock.next("STOPPING=1", 2*time.Second)
	t.Logf("lifecycle in %v", time.Since(start).Round(time.Millisecond))
}

// A board boots before its broker: READY=1 does not wait for it.
func TestNotifyReadyWithoutBroker(t *testing.T) {
	sock := listenNotify(t)
	e := newEnv(t)
	e.broker.Stop()
	r := e.start(e.config("dev1", simParts))
	sock.next("READY=1", 5*time.Second)
	got := sock.next("STATUS=broker unreachable: ", 10*time.Second)
	if strings.Contains(got, "\n") || len(got) > len("STATUS=")+160 {
		t.Errorf("status %q is not one short line", got)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	sock.next("STOPPING=1", 2*time.Second)
	for _, m := range sock.seen {
		if strings.Contains(m, "WATCHDOG=1") {
			t.Errorf("WATCHDOG=1 sent without WATCHDOG_USEC: %q", sock.seen)
		}
	}
}

func TestNewNotifier(t *testing.T) {
	const pid = 4242
	tests := []struct {
		name     string
		env      map[string]string
		wantNil  bool
		watchdog time.Duration
	}{
		{name: "no socket", env: map[string]string{"WATCHDOG_USEC": "200000"}, wantNil: true},
		{name: "socket only", env: map[string]string{"NOTIFY_SOCKET": "/run/x"}},
		{name: "abstract", env: map[string]string{"NOTIFY_SOCKET": "@x"}},
		{name: "watchdog", env: map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}, watchdog: 30 * time.Second},
		{name: "watchdog for us", env: map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "4242"}, watchdog: 200 * time.Millisecond},
		{name: "watchdog for another pid", env: map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}},
		{name: "bad usec", env: map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"}},
		{name: "zero usec", env: map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNotifier(func(k string) string { return tt.env[k] }, pid)
			if (n == nil) != tt.wantNil {
				t.Fatalf("got notifier %v, want nil %v", n, tt.wantNil)
			}
			if n == nil {
				n.Send("READY=1") // a nil notifier is a no-op
				return
			}
			if n.watchdog != tt.watchdog {
				t.Errorf("got watchdog %v, want %v", n.watchdog, tt.watchdog)
			}
			if n.addr.Name != tt.env["NOTIFY_SOCKET"] {
				t.Errorf("got socket %q, want %q", n.addr.Name, tt.env["NOTIFY_SOCKET"])
			}
		})
	}
}

// An abstract socket ('@' in NOTIFY_SOCKET) is reached too.
func TestNotifyAbstractSocket(t *testing.T) {
	name := "@agent-notify-test-" + strconv.Itoa(os.Getpid())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Skip("no abstract sockets here:", err)
	}
	defer c.Close()
	n := newNotifier(func(k string) string { return map[string]string{"NOTIFY_SOCKET": name}[k] }, 1)
	n.status("broker unreachable: first line\nsecond line")
	if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	k, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:k]), "STATUS=broker unreachable: first line"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The watchdog stops pinging once a loop shows no progress for the limit:
// here the announce loop stops serving its probe, then the executor stops
// taking a waiting command.
func TestWatchdogStopsWhenWedged(t *testing.T) {
	for _, loop := range []string{"announce", "executor"} {
		t.Run(loop, func(t *testing.T) {
			sock := listenNotify(t)
			t.Setenv("WATCHDOG_USEC", "20000")
			logs := &syncBuf{}
			d := &Daemon{log: slog.New(slog.NewTextHandler(logs, nil)), queue: newCmdQueue(maxQueued), beat: make(chan struct{})}
			n := newNotifier(os.Getenv, os.Getpid())
			ctx, cancel := context.WithCancel(context.Background())
			serving := make(chan struct{}) // closed: the announce loop stops serving
			served := make(chan struct{})
			go func() {
				defer close(served)
				for {
					select {
					case <-d.beat:
					case <-serving:
						if loop == "announce" {
							return
						}
						serving = nil
					case <-ctx.Done():
						return
					}
				}
			}()
			done := make(chan error, 1)
			go func() { done <- d.watchdogLoop(ctx, n, 150*time.Millisecond) }()
			defer func() { cancel(); <-done; <-served }()

			for range 3 {
				sock.next("WATCHDOG=1", 2*time.Second)
			}
			close(serving)
			if loop == "executor" {
				d.queue.push(item{payload: []byte(`{}`)}) // nobody pops it
			}
			r := &running{logs: logs}
			line := r.waitLog(t, "no longer pinging systemd", 5*time.Second)
			if want := "loop=\"the " + map[string]string{"announce": "announce loop", "executor": "command executor"}[loop] + "\""; !strings.Contains(line, want) {
				t.Errorf("got %q, want %s in it", line, want)
			}
		})
	}
}
