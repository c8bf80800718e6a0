package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/agent/command"
	"github.com/edgeagent/agent/sensors"
)

const (
	maxQueued   = 256  // commands waiting beyond this are answered "busy"
	dedupSize   = 1024 // replies remembered for redelivered ids
	readTimeout = 5 * time.Second
)

// item is one received command.
type item struct {
	payload     []byte
	size        int
	respTopic   string
	correlation []byte
	busy        bool    // the queue was full: answer, do not run (payload dropped)
	busyID      *string // the command's id, when a busy one had a readable id
}

// cmdQueue is the FIFO between paho's receive callback, which must never
// block (it also carries our PUBACKs), and the executor. Past max waiting,
// a command is queued as a "busy" answer without its payload; past 4×max it
// is dropped with a log line (a flood, not a workload).
type cmdQueue struct {
	mu      sync.Mutex
	items   []item
	max     int
	dropped int
	ready   chan struct{}
}

func newCmdQueue(max int) *cmdQueue { return &cmdQueue{max: max, ready: make(chan struct{}, 1)} }

// push queues it and reports false when it had to be dropped.
func (q *cmdQueue) push(it item) bool {
	q.mu.Lock()
	switch n := len(q.items); {
	case n >= 4*q.max:
		q.dropped++
		q.mu.Unlock()
		return false
	case n >= q.max:
		it.busy, it.busyID, it.payload = true, command.PeekID(it.payload), nil
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

func (q *cmdQueue) pop(ctx context.Context) (item, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			it := q.items[0]
			q.items[0] = item{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return it, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return item{}, false
		case <-q.ready:
		}
	}
}

// dedup remembers the reply to each of the last n command ids.
type dedup struct {
	mu    sync.Mutex
	byID  map[string][]byte
	order []string
	next  int
}

func newDedup(n int) *dedup { return &dedup{byID: map[string][]byte{}, order: make([]string, n)} }

func (c *dedup) get(id string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.byID[id]
	return r, ok
}

func (c *dedup) put(id string, reply []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[id]; ok {
		return
	}
	if old := c.order[c.next]; old != "" {
		delete(c.byID, old)
	}
	c.order[c.next] = id
	c.next = (c.next + 1) % len(c.order)
	c.byID[id] = reply
}

// onPublish is paho's receive callback; it must not block.
func (d *Daemon) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	if p.Topic != d.topics.cmd {
		if d.fleet != nil && d.fleet.Observe(p.Topic, p.Payload, d.now()) {
			return true, nil
		}
		if d.cfg.HA.Discovery && isHAConfig(p.Topic, d.cfg.HA.Prefix) {
			d.ha.add(p.Topic, p.Payload)
			return true, nil
		}
		return false, nil
	}
	it := item{size: len(p.Payload)}
	if it.size <= command.MaxPayload { // an oversize payload is answered by its size alone
		it.payload = slices.Clone(p.Payload)
	}
	if p.Properties != nil {
		it.respTopic = p.Properties.ResponseTopic
		it.correlation = slices.Clone(p.Properties.CorrelationData)
	}
	if !d.queue.push(it) {
		d.log.Warn("command dropped: too many waiting", "waiting", 4*maxQueued)
	}
	return true, nil
}

func (d *Daemon) execLoop(ctx context.Context) error {
	for {
		it, ok := d.queue.pop(ctx)
		if !ok {
			return nil
		}
		d.handle(ctx, it)
	}
}

// handle runs one command and answers it.
func (d *Daemon) handle(ctx context.Context, it item) {
	topic := d.topics.reply
	var note string
	if it.respTopic != "" {
		if validTopicName(it.respTopic) {
			topic = it.respTopic
		} else {
			note = fmt.Sprintf("response topic %q is not a valid topic name (no wildcards); answered on %s", clip(it.respTopic), d.topics.reply)
		}
	}
	var props *paho.PublishProperties
	if it.correlation != nil {
		props = &paho.PublishProperties{CorrelationData: it.correlation}
	}
	// A reply lost with the link is recovered by the requester sending the
	// same id again: the dedup cache answers it without running it twice.
	send := func(b []byte) {
		if err := d.publish(ctx, topic, b, false, props); err != nil {
			d.log.Warn("reply not delivered", "topic", topic, "err", err)
		}
	}
	var reply command.Reply
	req, err := d.decode(it)
	switch {
	case err != nil:
		var ce *command.Error
		if !errors.As(err, &ce) {
			ce = &command.Error{Msg: err.Error()}
		}
		d.log.Warn("bad command", "err", ce.Msg)
		reply = command.Fail(ce.ID, ce.Msg)
		if note != "" {
			reply.Error += "; " + note
		}
		b, _ := json.Marshal(reply)
		send(b)
		return
	}
	if prev, ok := d.dedup.get(req.ID); ok {
		d.log.Info("repeated command id: not run again, first reply re-sent", "cmd", req.ID)
		send(prev)
		return
	}
	if !req.Expires.IsZero() && !d.now().Before(req.Expires) {
		reply = command.Fail(&req.ID, fmt.Sprintf("command expired at %s (agent clock %s): not run", stamp(req.Expires), stamp(d.now())))
	} else {
		reply = d.execute(ctx, req)
	}
	if note != "" && !reply.OK {
		reply.Error += "; " + note
	}
	d.log.Info("command", "cmd", req.ID, "action", req.Action, "ok", reply.OK)
	b, err := json.Marshal(reply)
	if err != nil {
		b, _ = json.Marshal(command.Fail(&req.ID, "result could not be encoded: "+err.Error()))
	}
	d.dedup.put(req.ID, b)
	send(b)
}

func (d *Daemon) decode(it item) (command.Request, error) {
	if it.busy {
		return command.Request{}, &command.Error{ID: it.busyID, Msg: fmt.Sprintf("agent busy: more than %d commands waiting; not run, send it again later", maxQueued)}
	}
	if it.size > command.MaxPayload {
		return command.Request{}, &command.Error{Msg: fmt.Sprintf("command is %d bytes, over the %d byte limit", it.size, command.MaxPayload)}
	}
	return command.Decode(it.payload)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// execute runs a decoded command against the configured parts.
func (d *Daemon) execute(ctx context.Context, req command.Request) command.Reply {
	switch req.Action {
	case command.ActionPing:
		return command.OK(req.ID, map[string]any{"pong": true, "version": d.version, "role": d.cfg.Role,
			"uptime_s": int64(d.now().Sub(d.started).Seconds())})
	case command.ActionRead:
		targets := d.sensors
		if req.Read.Sensor != "" {
			s, ok := d.sensorBy[req.Read.Sensor]
			if !ok {
				return command.Fail(&req.ID, fmt.Sprintf("unknown sensor %q (configured: %s)", clip(req.Read.Sensor), names(d.sensors)))
			}
			targets = []sensors.Sensor{s}
		}
		// In parallel, so one slow sensor costs its own timeout only; with
		// all sensors, one that fails reports its error in its place.
		out := make(map[string]sensors.Values, len(targets))
		var mu sync.Mutex
		var wg sync.WaitGroup
		var firstErr error
		for _, s := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, cancel := context.WithTimeout(ctx, readTimeout)
				v, err := s.Read(rctx)
				cancel()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					v = sensors.Values{"error": err.Error()}
					if firstErr == nil {
						firstErr = fmt.Errorf("sensor %q: read failed: %v", s.Name(), err)
					}
				}
				out[s.Name()] = v
			}()
		}
		wg.Wait()
		if req.Read.Sensor != "" && firstErr != nil {
			return command.Fail(&req.ID, firstErr.Error())
		}
		return command.OK(req.ID, out)
	case command.ActionSet:
		a, ok := d.actBy[req.Set.Actuator]
		if !ok {
			return command.Fail(&req.ID, fmt.Sprintf("unknown actuator %q (configured: %s)", clip(req.Set.Actuator), names(d.actuators)))
		}
		// Set and its state publish are one step against the announce after a
		// reconnect, so a stale state can never be retained last.
		d.actMu.Lock()
		defer d.actMu.Unlock()
		before := a.State()
		now, err := a.Set(ctx, req.Set.Value)
		if err != nil {
			return command.Fail(&req.ID, err.Error())
		}
		if !reflect.DeepEqual(before, now) {
			if err := d.publishState(ctx, a.Name(), now); err != nil {
				d.log.Warn("state not published", "actuator", a.Name(), "err", err)
			}
		}
		return command.OK(req.ID, map[string]any{"actuator": a.Name(), "value": now})
	}
	return command.Fail(&req.ID, fmt.Sprintf("unknown action %q", req.Action))
}

func names[T interface{ Name() string }](xs []T) string {
	if len(xs) == 0 {
		return "none"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.Name()
	}
	return strings.Join(s, ", ")
}

type stateMsg struct {
	Value any    `json:"value"`
	TS    string `json:"ts"`
}

func (d *Daemon) publishState(ctx context.Context, name string, v any) error {
	return d.publishJSON(ctx, d.topics.state(name), stateMsg{Value: v, TS: stamp(d.now())}, true, nil)
}

type telemetry struct {
	TS     string         `json:"ts"`
	Sensor string         `json:"sensor"`
	Type   string         `json:"type"`
	Seq    uint64         `json:"seq"`
	Values sensors.Values `json:"values"`
}

// sensorError is what a failed reading publishes on the sensor's telemetry
// topic: at most once per backoff step (the scheduler's).
type sensorError struct {
	TS     string `json:"ts"`
	Sensor string `json:"sensor"`
	Type   string `json:"type"`
	Seq    uint64 `json:"seq"`
	Error  string `json:"error"`
}
