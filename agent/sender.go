package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/agent/buffer"
	"github.com/edgeagent/agent/sensors"
)

// Store and forward. A reading is appended to the log (agent/buffer)
// first and published from it by sendLoop; the log drops it only when the
// broker's PUBACK says it has it. The sender writes in log order with
// paho's AsyncSend, which returns once the packet is written and blocks
// while the broker's Receive Maximum is in flight: a backlog drains
// pipelined at the broker's pace, and new readings queue behind it in
// order. Each PUBACK comes back through the session (ackSession): success
// acks the record, a refusal (>= 0x80) sets it aside, and a packet that
// left the session unacknowledged is sent again from the log after the
// next connection (duplicates are possible, gaps are not).

const readBatch = 256

// publishReading appends one reading to the log.
func (d *Daemon) publishReading(_ context.Context, r sensors.Reading) {
	var msg any = telemetry{TS: stamp(r.TS), Sensor: r.Sensor, Type: r.Type, Seq: r.Seq, Values: r.Values}
	if r.Err != nil {
		msg = sensorError{TS: stamp(r.TS), Sensor: r.Sensor, Type: r.Type, Seq: r.Seq, Error: r.Err.Error()}
	}
	payload, err := json.Marshal(msg)
	if err != nil {
		d.log.Error("reading not encoded", "sensor", r.Sensor, "err", err)
		return
	}
	if _, err := d.buf.Append(buffer.Record{Topic: d.topics.telemetry(r.Sensor), Payload: payload, Sensor: r.Sensor, Seq: r.Seq}); err != nil {
		d.log.Error("reading not stored", "sensor", r.Sensor, "err", err)
	}
}

// sendLoop drains the log over each connection in turn.
func (d *Daemon) sendLoop(ctx context.Context) error {
	for {
		cli, err := d.cm.await(ctx)
		if err != nil {
			return nil
		}
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-cli.Done():
				cancel()
			case <-lctx.Done():
			}
		}()
		d.window.reset()
		d.window.setSize(int(d.cm.receiveMax()))
		err = d.drain(lctx, cli)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d.log.Debug("sending paused until the next connection", "err", err)
		}
		// Wait for this connection to end before the next: await would
		// return the same client again.
		<-cli.Done()
	}
}

// drain sends the log from its first unacknowledged record, then follows
// it as readings are appended, until ctx ends or a send fails.
func (d *Daemon) drain(ctx context.Context, cli *paho.Client) error {
	next := d.buf.FirstUnacked()
	if n := d.buf.Stats().Depth; n >= backlogReport {
		d.backlog.start(n, time.Now())
		if d.gcPercent > 0 {
			debug.SetGCPercent(100) // until delivered: a drain allocates fast
		}
		d.log.Info("sending the readings kept while the broker was away", "readings", n)
	}
	for {
		entries, err := d.buf.Read(next, readBatch)
		if err != nil {
			return fmt.Errorf("read the buffer: %w", err)
		}
		if len(entries) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-d.buf.Notify():
			}
			continue
		}
		for _, e := range entries {
			off, topic, payload := e.Offset, e.Topic, e.Payload
			if len(payload) == 0 {
				payload = []byte("{}") // never: readings are JSON objects
			}
			if err := d.window.acquire(ctx); err != nil {
				return err
			}
			d.cm.sess.expect(payload, func(code byte, acked bool) {
				d.window.release()
				d.settle(off, topic, code, acked)
			})
			_, err := cli.PublishWithOptions(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload},
				paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
			if err != nil {
				if !errors.Is(err, paho.ErrNetworkErrorAfterStored) {
					d.cm.sess.forget(payload)
					d.window.release()
				}
				return err
			}
			next = off + 1
		}
	}
}

// settle records the broker's answer for one record.
func (d *Daemon) settle(off uint64, topic string, code byte, acked bool) {
	switch {
	case !acked:
		// Left the session without a PUBACK (a new session on reconnect):
		// still unacknowledged in the log, sent again.
	case code >= 0x80:
		resp := &paho.PublishResponse{ReasonCode: code}
		why := fmt.Sprintf("0x%02x %s", code, pubackText(resp))
		d.buf.Reject(off, why)
		if log, n := d.refused.note(topic, d.now()); log {
			d.log.Error("broker refused a reading; set aside, not retried", "topic", topic, "reason", why,
				"refused_since_last_log", n, "hint", refusalHint(code, topic, d.id, d.cfg.MQTT.Prefix))
		}
		d.setLastError(fmt.Sprintf("broker refused %s: %s", topic, why))
	default:
		d.buf.Ack(off)
		if n, took, ok := d.backlog.check(d.buf, time.Now()); ok {
			if d.gcPercent > 0 {
				debug.SetGCPercent(d.gcPercent)
			}
			d.log.Info("backlog delivered", "readings", n, "took", took.Round(time.Millisecond),
				"per_second", int(float64(n)/took.Seconds()))
		}
	}
}

// sendWindow paces the sender in half-windows: once the window of
// unacknowledged readings is full, it waits until half of it is
// acknowledged and then sends the next half back to back. The flusher
// then carries them in one TLS record and one write, and the broker reads
// them in one go, instead of one packet per PUBACK at the window's edge.
type sendWindow struct {
	mu       sync.Mutex
	size     int // the window (the broker's Receive Maximum, at most maxWindow)
	inflight int
	refill   bool          // full: wait for half to drain
	wake     chan struct{} // a release happened
}

const maxWindow = 64

func newSendWindow() *sendWindow { return &sendWindow{size: 20, wake: make(chan struct{}, 1)} }

// setSize takes the connection's Receive Maximum (0: unknown, 20).
func (w *sendWindow) setSize(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case n <= 0:
		w.size = 20
	default:
		w.size = min(n, maxWindow)
	}
}

func (w *sendWindow) acquire(ctx context.Context) error {
	for {
		w.mu.Lock()
		if w.refill && w.inflight <= w.size/2 {
			w.refill = false
		}
		if !w.refill && w.inflight < w.size {
			w.inflight++
			if w.inflight == w.size {
				w.refill = true
			}
			w.mu.Unlock()
			return nil
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.wake:
		}
	}
}

func (w *sendWindow) release() {
	w.mu.Lock()
	if w.inflight > 0 {
		w.inflight--
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// reset forgets what was in flight on a connection that is gone (its
// packets are settled as unacknowledged, or resent by the session).
func (w *sendWindow) reset() {
	w.mu.Lock()
	w.inflight, w.refill = 0, false
	w.mu.Unlock()
}

// backlogReport is the backlog size from which its delivery is logged.
const backlogReport = 1000

// backlogTracker times the delivery of a backlog found at a connection.
type backlogTracker struct {
	mu     sync.Mutex
	active bool
	n      int
	since  time.Time
}

func (b *backlogTracker) start(n int, now time.Time) {
	b.mu.Lock()
	b.active, b.n, b.since = true, n, now
	b.mu.Unlock()
}

// check reports the backlog delivered once the log is empty.
func (b *backlogTracker) check(l *buffer.Log, now time.Time) (int, time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active || l.Stats().Depth > 0 {
		return 0, 0, false
	}
	b.active = false
	return b.n, now.Sub(b.since), true
}

// openBuffer opens buffer.dir (memory only when unset).
func (d *Daemon) openBuffer() error {
	b := d.cfg.Buffer
	if b.Dir == "" {
		d.log.Warn("buffer.dir is not set: readings made while the broker is away are kept in memory only, and lost if the agent restarts")
	}
	log, err := buffer.Open(buffer.Options{Dir: b.Dir, MaxBytes: int64(b.MaxBytes), Sync: buffer.SyncPolicy(b.Sync), Logger: d.log.With("part", "buffer")})
	if err != nil {
		return fmt.Errorf("config %s: buffer: %w", d.cfg.Path, err)
	}
	d.buf = log
	return nil
}

// healthEvery is how often the status is republished when the health it
// carries changed.
const healthEvery = 30 * time.Second

// healthLoop republishes the retained status when queue depth, drops,
// reconnects or the last error changed, while connected.
func (d *Daemon) healthLoop(ctx context.Context) error {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	var last status
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		lctx := d.link.current()
		if lctx == nil {
			continue
		}
		st := d.statusPayload("online")
		cmp := st
		cmp.TS = last.TS
		if cmp == last {
			continue
		}
		if err := d.publishJSON(lctx, d.topics.status, st, true, nil); err == nil {
			last = st
		}
	}
}
