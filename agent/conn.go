package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/tlsclient"
)

const (
	sessionExpiry  = 300 // s: commands sent during a short outage are delivered on reconnect
	dialTimeout    = 10 * time.Second
	publishTimeout = 10 * time.Second
	backoffBase    = 500 * time.Millisecond
	backoffCap     = 60 * time.Second
	stableLink     = 10 * time.Second // a connection up this long resets the backoff
)

// flapBackoff carries the backoff count across connections that drop soon
// after they come up.
type flapBackoff struct {
	mu    sync.Mutex
	since time.Time
	n     int
}

func (f *flapBackoff) up(now time.Time) { f.mu.Lock(); f.since = now; f.mu.Unlock() }

func (f *flapBackoff) down(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.since) < stableLink {
		f.n++
	} else {
		f.n = 0
	}
}

func (f *flapBackoff) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.n }

// backoff is the delay before connection attempt n of one outage: none
// before the first, then exponential from backoffBase with jitter in the
// upper half of each step, capped at backoffCap.
func backoff(n int, rnd func() float64) time.Duration {
	if n <= 0 {
		return 0
	}
	d := backoffCap
	if n < 20 {
		d = min(backoffBase<<(n-1), backoffCap)
	}
	return d/2 + time.Duration(rnd()*float64(d/2))
}

func (d *Daemon) brokerLabel() string {
	if d.cfg.Broker.Discover {
		if a := d.broker.last(); a.IsValid() {
			return a.String() + " (" + d.cfg.Broker.Host + ", discovered)"
		}
		return d.cfg.Broker.Host + " (discovering " + d.cfg.Broker.Service + ")"
	}
	return net.JoinHostPort(d.dialHost(), strconv.Itoa(d.cfg.Broker.Port)) + " (" + d.cfg.Broker.Host + ")"
}

// dialHost is where the TCP connection goes; TLS always verifies broker.host.
func (d *Daemon) dialHost() string {
	if d.cfg.Broker.Address != "" {
		return d.cfg.Broker.Address
	}
	return d.cfg.Broker.Host
}

func reasonString(p *paho.DisconnectProperties) string {
	if p == nil {
		return ""
	}
	return p.ReasonString
}

// attemptState remembers the connection of the attempt in progress, so a
// failure after the TLS handshake (under TLS 1.3 the broker rejects our
// certificate only then) is explained by the alert it read.
type attemptState struct {
	mu   sync.Mutex
	conn *recConn
}

func (a *attemptState) set(c *recConn) { a.mu.Lock(); a.conn = c; a.mu.Unlock() }
func (a *attemptState) reset()         { a.set(nil) }
func (a *attemptState) readErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn == nil {
		return nil
	}
	return a.conn.err()
}

// recConn records the first read error of a connection, and batches
// writes. It is the sync.Locker paho takes around each packet write: paho
// writes a packet in several Write calls (fixed header, variable header,
// properties, payload), so without it concurrent publishes interleave and
// the broker drops us for a malformed packet. While it is locked the parts
// are gathered; Unlock queues the whole packet for a flusher goroutine, which
// sends everything queued in one write. A packet waits at most for the
// write in progress, and a backlog drains several packets to a TLS record
// and a system call instead of four system calls a packet.
type recConn struct {
	net.Conn
	wmu       sync.Mutex  // held by paho while it writes one packet
	gathering atomic.Bool // wmu is held: writes are gathered
	pkt       []byte      // the packet being gathered (under wmu)

	omu     sync.Mutex
	outbox  []byte        // packets queued for the flusher (under omu)
	werr    error         // the flusher's write error (under omu)
	kick    chan struct{} // wakes the flusher
	stop    chan struct{} // closed by Close
	flushed chan struct{} // closed when the flusher has returned
	once    sync.Once

	mu    sync.Mutex
	first error
}

func newRecConn(c net.Conn) *recConn {
	rc := &recConn{Conn: c, kick: make(chan struct{}, 1), stop: make(chan struct{}), flushed: make(chan struct{})}
	go rc.flusher()
	return rc
}

// Lock starts gathering one packet.
func (c *recConn) Lock() { c.wmu.Lock(); c.gathering.Store(true) }

// Unlock queues the gathered packet.
func (c *recConn) Unlock() {
	c.gathering.Store(false)
	if len(c.pkt) > 0 {
		c.omu.Lock()
		c.outbox = append(c.outbox, c.pkt...)
		c.omu.Unlock()
		c.pkt = c.pkt[:0]
		if cap(c.pkt) > 64<<10 {
			c.pkt = nil // do not keep a large payload's buffer
		}
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	c.wmu.Unlock()
}

func (c *recConn) flusher() {
	defer close(c.flushed)
	var buf []byte
	for {
		select {
		case <-c.kick:
		case <-c.stop:
			c.flushOnce(&buf)
			return
		}
		c.flushOnce(&buf)
	}
}

// flushOnce writes what is queued, swapping buffers so Unlock never waits
// for the network.
func (c *recConn) flushOnce(buf *[]byte) {
	c.omu.Lock()
	out := c.outbox
	c.outbox = (*buf)[:0]
	c.omu.Unlock()
	if len(out) == 0 {
		*buf = out
		return
	}
	if _, err := c.write(out); err != nil {
		c.omu.Lock()
		if c.werr == nil {
			c.werr = err
		}
		c.omu.Unlock()
	}
	if cap(out) > 1<<20 {
		out = nil
	}
	*buf = out
}

// Close sends what is queued (a DISCONNECT, say), then closes.
func (c *recConn) Close() error {
	c.once.Do(func() { close(c.stop) })
	select {
	case <-c.flushed:
	case <-time.After(time.Second):
	}
	return c.Conn.Close()
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.mu.Lock()
		if c.first == nil {
			c.first = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// Write gathers a packet's parts while paho holds the lock (paho writes
// every packet that way: ControlPacket.WriteTo takes a sync.Locker conn's
// lock); a write without the lock is queued whole.
func (c *recConn) Write(p []byte) (int, error) {
	c.omu.Lock()
	err := c.werr
	c.omu.Unlock()
	if err != nil {
		return 0, err
	}
	if !c.gathering.Load() {
		// Queued like a packet, so it cannot overtake one.
		c.omu.Lock()
		c.outbox = append(c.outbox, p...)
		c.omu.Unlock()
		select {
		case c.kick <- struct{}{}:
		default:
		}
		return len(p), nil
	}
	c.pkt = append(c.pkt, p...)
	return len(p), nil
}

// write records a failed write too. Under TLS 1.3 the broker's refusal of
// our certificate can reset the connection before paho reads anything: the
// CONNECT write fails with "connection reset", and the alert that says why
// still sits in the receive buffer. A short read fetches it.
func (c *recConn) write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.first == nil {
			c.first = err
			if alert := tlsclient.FetchAlert(c.Conn); alert != nil {
				c.first = alert
			}
		}
	}
	return n, err
}

func (c *recConn) err() error { c.mu.Lock(); defer c.mu.Unlock(); return c.first }

func (d *Daemon) dial(ctx context.Context) (net.Conn, error) {
	d.attempt.reset()
	var c net.Conn
	var err error
	if d.cfg.Broker.Discover {
		c, err = d.dialDiscovered(ctx)
	} else {
		c, err = d.dialFixed(ctx)
	}
	if err != nil {
		return nil, err
	}
	rc := newRecConn(c)
	d.attempt.set(rc)
	return rc, nil
}

// explainConnect names the cause of a failed connection attempt.
func (d *Daemon) explainConnect(err error) string {
	var ce *connackError
	if errors.As(err, &ce) {
		return connackHint(ce.code, ce.reason, d.id)
	}
	if rerr := d.attempt.readErr(); rerr != nil {
		return tlsclient.Explain(rerr, d.cfg.Broker.Host)
	}
	return tlsclient.Explain(err, d.cfg.Broker.Host)
}

func connackHint(code byte, reason, id string) string {
	s := fmt.Sprintf("the broker refused the MQTT session (CONNACK 0x%02x", code)
	if reason != "" {
		s += " " + reason
	}
	s += ")"
	switch code {
	case 0x85:
		return s + ": client identifier not valid"
	case 0x86, 0x87:
		return s + fmt.Sprintf(": not authorized; with use_identity_as_username true Mosquitto takes the certificate CN (%q) as the user: check its ACL and allow_anonymous settings", id)
	case 0x8a:
		return s + ": this client is banned"
	case 0x84:
		return s + ": the broker does not speak MQTT v5 (Mosquitto ≥ 1.6 does)"
	}
	return s
}

// errRefused marks a publish the broker answered with a reason code ≥ 0x80.
var errRefused = errors.New("broker refused publish")

// publish sends one QoS 1 message and waits for the PUBACK. A refusal by the
// broker (reason ≥ 0x80) is logged with the topic and a hint, rate-limited
// per topic, and returned as an error.
func (d *Daemon) publish(ctx context.Context, topic string, payload []byte, retain bool, props *paho.PublishProperties) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	resp, err := d.cm.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload, Retain: retain, Properties: props})
	if resp != nil && resp.ReasonCode >= 0x80 {
		if log, n := d.refused.note(topic, d.now()); log {
			d.log.Error("broker refused publish", "topic", topic, "reason", fmt.Sprintf("0x%02x %s", resp.ReasonCode, pubackText(resp)),
				"refused_since_last_log", n, "hint", refusalHint(resp.ReasonCode, topic, d.id, d.cfg.MQTT.Prefix))
		}
		return fmt.Errorf("%w: %s: reason 0x%02x", errRefused, topic, resp.ReasonCode)
	}
	return err
}

func (d *Daemon) publishJSON(ctx context.Context, topic string, v any, retain bool, props *paho.PublishProperties) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return d.publish(ctx, topic, b, retain, props)
}

func pubackText(r *paho.PublishResponse) string {
	if r.Properties != nil && r.Properties.ReasonString != "" {
		return r.Properties.ReasonString
	}
	switch r.ReasonCode {
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized"
	case 0x90:
		return "topic name invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x97:
		return "quota exceeded"
	case 0x99:
		return "payload format invalid"
	}
	return "refused"
}

func refusalHint(code byte, topic, id, prefix string) string {
	if code == 0x87 {
		return fmt.Sprintf("the broker's ACL does not let user %q (the certificate CN) write %q: the fleet ACL needs `pattern write %s/%%u/#`, and requesters must choose Response Topics under %s/%s/reply/", id, topic, prefix, prefix, id)
	}
	return "see the broker's log for this client"
}

// subscribe to the command topic and check the broker granted it.
func (d *Daemon) subscribe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	sa, err := d.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: d.topics.cmd, QoS: 1}}})
	if sa != nil && len(sa.Reasons) > 0 && sa.Reasons[0] >= 0x80 {
		return fmt.Errorf("broker refused the subscription (reason 0x%02x): the ACL must let %q read %s (`pattern read %s/%%u/cmd`)",
			sa.Reasons[0], d.id, d.topics.cmd, d.cfg.MQTT.Prefix)
	}
	return err
}
