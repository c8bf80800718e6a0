package agent

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"
)

// This file is systemd's notify protocol (sd_notify(3)): a datagram of
// "KEY=value" lines sent to the unix socket named by $NOTIFY_SOCKET (an
// abstract socket when the name starts with '@', which the net package maps
// to the leading NUL). A few lines of the standard library, so no module.

// notifier sends state changes to systemd. A nil *notifier (no
// $NOTIFY_SOCKET: not started by systemd with Type=notify) does nothing, so
// callers never check.
type notifier struct {
	addr *net.UnixAddr
	// watchdog is how often WATCHDOG=1 must arrive (WATCHDOG_USEC; 0: no
	// watchdog for this process).
	watchdog time.Duration
}

// newNotifier reads the environment systemd sets; nil when NOTIFY_SOCKET is
// unset. getenv is os.Getenv outside tests.
func newNotifier(getenv func(string) string, pid int) *notifier {
	sock := getenv("NOTIFY_SOCKET")
	if sock == "" {
		return nil
	}
	n := &notifier{addr: &net.UnixAddr{Name: sock, Net: "unixgram"}}
	// WATCHDOG_PID names the process the watchdog is for: a child that
	// inherited the environment must not ping on the service's behalf.
	if us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		if p := getenv("WATCHDOG_PID"); p == "" || p == strconv.Itoa(pid) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

// Send sends state ("READY=1", "STATUS=…", several joined by '\n'). A
// failure is ignored: systemd not listening must never stop the agent, and
// the next state says the same again.
func (n *notifier) Send(state string) {
	if n == nil {
		return
	}
	// One socket per message, as sd_notify does: these are rare (state
	// changes, a watchdog tick of seconds), and nothing is left open.
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return
	}
	_, _ = c.Write([]byte(state))
	c.Close()
}

// status sends one STATUS line (systemctl status shows it), kept to one
// short line whatever the cause's text.
func (n *notifier) status(s string) {
	if n == nil {
		return
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	n.Send("STATUS=" + s)
}

// stallLimit is how long a loop may be busy before the watchdog calls it
// wedged. A busy loop is legitimate for a while: the announce subscribes on
// a link that may have died silently (noticed within ~1.1 × keepalive), the
// executor publishes a reply on the same link.
func (d *Daemon) stallLimit() time.Duration {
	return max(time.Minute, 3*d.cfg.MQTT.KeepAlive.Duration)
}

// watchdogLoop sends WATCHDOG=1 every half of WATCHDOG_USEC while the
// daemon's loops are responsive, and stops sending when one is wedged, so
// systemd restarts a daemon that is alive but no longer working.
//
// Why not only "the goroutine ticks": that proves the runtime schedules, not
// that commands are served. Why not wait for each loop's answer: a loop is
// legitimately busy for up to stallLimit (a subscribe on a dead link), and
// WatchdogSec may be shorter than that, so a wait would miss pings of a
// healthy daemon. Instead each tick probes without blocking and a loop only
// counts as wedged after stallLimit without showing progress:
//   - the announce loop serves d.beat in its idle select: a tick's
//     non-blocking send succeeds exactly when it is idle;
//   - the executor is observed through its queue (nothing waiting, or the
//     head has moved since the last tick), which needs nothing from it.
//
// limit is stallLimit outside tests.
func (d *Daemon) watchdogLoop(ctx context.Context, n *notifier, limit time.Duration) error {
	t := time.NewTicker(n.watchdog / 2)
	defer t.Stop()
	now := time.Now
	announceSeen, execSeen := now(), now()
	var head *item
	wedged := false // logged once per episode, not at every tick
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		select {
		case d.beat <- struct{}{}:
			announceSeen = now()
		default:
		}
		if h := d.queue.head(); h == nil || h != head {
			execSeen, head = now(), h
		}
		stuck := ""
		switch {
		case now().Sub(announceSeen) > limit:
			stuck = "the announce loop"
		case now().Sub(execSeen) > limit:
			stuck = "the command executor"
		}
		if stuck == "" {
			wedged = false
			n.Send("WATCHDOG=1")
			continue
		}
		if !wedged {
			wedged = true
			d.log.Error("watchdog: a loop shows no progress; no longer pinging systemd, which restarts the agent", "loop", stuck, "limit", limit)
		}
	}
}

// head is the first waiting command (nil: none). Its address changes when
// the executor takes it (or, harmlessly, when the queue grows its array), so
// an unchanged non-nil head means no progress.
func (q *cmdQueue) head() *item {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil
	}
	return &q.items[0]
}
