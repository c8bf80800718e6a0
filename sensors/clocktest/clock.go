// Package clocktest is a fake sensors.Clock: time moves only when a test
// calls Advance, and timers fire in order as it passes them, so debounce and
// scheduling are tested without sleeping.
package clocktest

import (
	"sort"
	"sync"
	"time"

	"github.com/edgeagent/agent/sensors"
)

// Clock is a fake clock starting at a fixed time.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

// New returns a clock at t.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now implements sensors.Clock.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// NewTimer implements sensors.Clock.
func (c *Clock) NewTimer(d time.Duration) sensors.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, ch: make(chan time.Time, 1), when: c.now.Add(d), armed: true}
	c.timers = append(c.timers, t)
	return t
}

// Timers reports how many timers are armed (to wait until code under test
// has set its next one before advancing).
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.armed {
			n++
		}
	}
	return n
}

// Advance moves time forward by d, firing every timer due on the way in
// order of their deadlines (each at its own deadline).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var due []*timer
		for _, t := range c.timers {
			if t.armed && !t.when.After(end) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			break
		}
		sort.Slice(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
		t := due[0]
		c.now = t.when
		t.armed = false
		select {
		case t.ch <- t.when:
		default:
		}
	}
	c.now = end
	c.mu.Unlock()
}

type timer struct {
	c     *Clock
	ch    chan time.Time
	when  time.Time
	armed bool
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
	t.when, t.armed = t.c.now.Add(d), true
}

func (t *timer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.armed = false
}

// AdvanceToNext moves time to the earliest armed timer's deadline (firing
// it) and reports whether there was one.
func (c *Clock) AdvanceToNext() bool {
	c.mu.Lock()
	var next time.Time
	found := false
	for _, t := range c.timers {
		if t.armed && (!found || t.when.Before(next)) {
			next, found = t.when, true
		}
	}
	now := c.now
	c.mu.Unlock()
	if !found {
		return false
	}
	c.Advance(next.Sub(now))
	return true
}
