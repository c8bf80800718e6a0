package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	paholog "github.com/eclipse/paho.golang/paho/log"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/edgeagent/agent/tlsclient"
)

// link manager: one MQTT v5 connection at a time, redialled with backoff,
// the session kept across connections. It replaces autopaho because the
// store-and-forward sender needs the paho.Client itself: it writes
// telemetry with AsyncSend, in log order, one window of the broker's Receive
// Maximum at a time, and learns each PUBACK's reason code through the
// session (ackSession), which autopaho's queue cannot give.

// errConnDown is returned while no connection is up.
var errConnDown = errors.New("not connected to the broker")

// connackError is a CONNACK with a failure reason code.
type connackError struct {
	code   byte
	reason string
}

func (e *connackError) Error() string {
	return fmt.Sprintf("CONNACK 0x%02x %s", e.code, e.reason)
}

type mqttLink struct {
	d    *Daemon
	sess *ackSession

	mu     sync.Mutex
	cli    *paho.Client
	rmax   uint16             // the connection's Receive Maximum (0: not given)
	cancel context.CancelFunc // ends run's loop (set by run)
	ready  chan struct{}      // closed while a connection is up; replaced when it goes down
	stop   bool
	done   chan struct{} // closed when run returns
}

func newMQTTLink(d *Daemon) *mqttLink {
	return &mqttLink{d: d, sess: newAckSession(state.NewInMemory()), ready: make(chan struct{}), done: make(chan struct{})}
}

// run connects and reconnects until ctx ends or Disconnect is called.
func (m *mqttLink) run(ctx context.Context) {
	defer close(m.done)
	defer m.sess.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	m.cancel = cancel // Disconnect ends a wait between attempts at once
	m.mu.Unlock()
	d := m.d
	first := true
	attempt := 0
	for {
		if n := attempt + d.flaps.count(); attempt > 0 || n > 0 {
			w := backoff(n, rand.Float64)
			if n > 0 {
				d.log.Info("retrying broker connection", "attempt", n+1, "in", w.Round(time.Millisecond))
			}
			t := time.NewTimer(w)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if m.stopping() || ctx.Err() != nil {
			return
		}
		cli, rmax, err := m.connect(ctx, first)
		if err != nil {
			if ctx.Err() != nil || m.stopping() {
				return
			}
			attempt++
			why := d.explainConnect(err)
			d.setLastError(why)
			d.log.Warn("broker connection failed", "broker", d.brokerLabel(), "cause", why)
			d.notify.status("broker unreachable: " + why)
			continue
		}
		first, attempt = false, 0
		m.mu.Lock()
		m.cli, m.rmax = cli, rmax
		close(m.ready)
		m.mu.Unlock()
		m.up()
		select {
		case <-cli.Done():
		case <-ctx.Done():
		}
		m.mu.Lock()
		m.cli = nil
		m.ready = make(chan struct{})
		stopping := m.stop
		m.mu.Unlock()
		if stopping || ctx.Err() != nil {
			return
		}
		m.down()
	}
}

func (m *mqttLink) stopping() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.stop }

// connect dials and sends CONNECT: clean start on the process's first
// connection only, so the session (and commands queued in it during a
// short outage) survives a reconnect.
func (m *mqttLink) connect(ctx context.Context, first bool) (*paho.Client, uint16, error) {
	d := m.d
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := d.dial(dctx)
	if err != nil {
		return nil, 0, err
	}
	cli := paho.NewClient(paho.ClientConfig{
		ClientID:          d.id,
		Conn:              conn,
		Session:           m.sess,
		PingHandler:       newPinger(),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){d.onPublish},
		OnClientError: func(err error) {
			d.log.Warn("connection error", "cause", tlsclient.Explain(err, d.cfg.Broker.Host))
		},
		OnServerDisconnect: func(p *paho.Disconnect) {
			d.log.Warn("broker closed the session", "reason", fmt.Sprintf("0x%02x %s", p.ReasonCode, reasonString(p.Properties)))
		},
	})
	expiry := uint32(sessionExpiry)
	will, _ := json.Marshal(d.statusPayload("offline")) // a fresh will each time: its ts is this session's
	cp := &paho.Connect{
		ClientID:       d.id,
		KeepAlive:      uint16(d.cfg.MQTT.KeepAlive.Seconds()),
		CleanStart:     first,
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: &expiry},
		WillMessage:    &paho.WillMessage{Retain: true, QoS: 1, Topic: d.topics.status, Payload: will},
		WillProperties: &paho.WillProperties{},
	}
	ca, err := cli.Connect(dctx, cp)
	if err != nil {
		conn.Close()
		if ca != nil && ca.ReasonCode >= 0x80 {
			reason := ""
			if ca.Properties != nil {
				reason = ca.Properties.ReasonString
			}
			return nil, 0, &connackError{code: ca.ReasonCode, reason: reason}
		}
		return nil, 0, err
	}
	var rmax uint16
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		rmax = *ca.Properties.ReceiveMaximum
	}
	return cli, rmax, nil
}

// receiveMax is the current connection's Receive Maximum (0: not given).
func (m *mqttLink) receiveMax() uint16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rmax
}

func (m *mqttLink) up() {
	d := m.d
	d.attempt.reset()
	d.flaps.up(d.now())
	d.reconnects.Add(1)
	d.log.Info("connected", "broker", d.brokerLabel())
	d.notify.status("connected to " + d.brokerLabel())
	ctx := d.link.up()
	// Only this goroutine sends; a pending signal is for a connection that
	// is already gone, so replace it.
	select {
	case <-d.up:
	default:
	}
	d.up <- ctx
}

func (m *mqttLink) down() {
	d := m.d
	d.link.down()
	d.flaps.down(d.now())
	d.log.Warn("connection lost; reconnecting", "broker", d.brokerLabel())
	d.notify.status("broker unreachable: connection lost; reconnecting")
}

// client returns the connected client, or nil.
func (m *mqttLink) client() *paho.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cli
}

// await blocks until a connection is up and returns its client.
func (m *mqttLink) await(ctx context.Context) (*paho.Client, error) {
	for {
		m.mu.Lock()
		cli, ready := m.cli, m.ready
		m.mu.Unlock()
		if cli != nil {
			return cli, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.done:
			return nil, errConnDown
		case <-ready:
		}
	}
}

// Publish, Subscribe and Unsubscribe use the current connection.
func (m *mqttLink) Publish(ctx context.Context, p *paho.Publish) (*paho.PublishResponse, error) {
	cli := m.client()
	if cli == nil {
		return nil, errConnDown
	}
	return cli.Publish(ctx, p)
}

func (m *mqttLink) Subscribe(ctx context.Context, s *paho.Subscribe) (*paho.Suback, error) {
	cli := m.client()
	if cli == nil {
		return nil, errConnDown
	}
	return cli.Subscribe(ctx, s)
}

func (m *mqttLink) Unsubscribe(ctx context.Context, u *paho.Unsubscribe) (*paho.Unsuback, error) {
	cli := m.client()
	if cli == nil {
		return nil, errConnDown
	}
	return cli.Unsubscribe(ctx, u)
}

// Disconnect sends DISCONNECT (0x04, "with will", when the offline status
// could not be published) and waits for run to end, within ctx.
func (m *mqttLink) Disconnect(ctx context.Context, withWill bool) error {
	m.mu.Lock()
	m.stop = true
	cli, cancel := m.cli, m.cancel
	m.mu.Unlock()
	if cli != nil {
		code := byte(0)
		if withWill {
			code = 0x04
		}
		_ = cli.Disconnect(&paho.Disconnect{ReasonCode: code})
	} else if cancel != nil {
		cancel() // between attempts: nothing to say goodbye to
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ackSession is paho's in-memory session with one addition: for the
// telemetry the sender registers (by its payload's backing array, which
// paho passes through untouched), it reports the broker's PUBACK reason
// code, or that the packet left the session unacknowledged (a new session
// on reconnect). Every registered packet shares one response channel, read
// by one collector goroutine that maps the PUBACK's packet identifier back
// to the waiter: no goroutine or channel per reading.
type ackSession struct {
	session.SessionManager
	mu   sync.Mutex
	want map[*byte]func(code byte, acked bool)    // registered, not yet in the session
	byID map[uint16][]func(code byte, acked bool) // in the session, by packet identifier (FIFO: an identifier is reused only after its PUBACK)
	acks chan packets.ControlPacket
	stop chan struct{}
}

func newAckSession(inner session.SessionManager) *ackSession {
	s := &ackSession{SessionManager: inner, want: map[*byte]func(byte, bool){}, byID: map[uint16][]func(byte, bool){},
		acks: make(chan packets.ControlPacket, 1024), stop: make(chan struct{})}
	go s.collect()
	return s
}

// close ends the collector, once the client is gone.
func (s *ackSession) close() { close(s.stop) }

func (s *ackSession) collect() {
	for {
		var cp packets.ControlPacket
		select {
		case cp = <-s.acks:
		case <-s.stop:
			return
		}
		pa, ok := cp.Content.(*packets.Puback)
		if !ok || cp.Type != packets.PUBACK {
			continue // a shutdown's empty packet: the records stay in the log
		}
		s.mu.Lock()
		q := s.byID[pa.PacketID]
		var done func(byte, bool)
		if len(q) > 0 {
			done = q[0]
			if len(q) == 1 {
				delete(s.byID, pa.PacketID)
			} else {
				s.byID[pa.PacketID] = q[1:]
			}
		}
		s.mu.Unlock()
		if done != nil {
			done(pa.ReasonCode, true)
		}
	}
}

// ConAckReceived settles as unacknowledged the packets a new session
// discards (paho drops them without a word).
func (s *ackSession) ConAckReceived(w io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	if !ca.SessionPresent {
		s.mu.Lock()
		pending := s.byID
		s.byID = map[uint16][]func(byte, bool){}
		s.mu.Unlock()
		for _, q := range pending {
			for _, done := range q {
				done(0, false)
			}
		}
	}
	return s.SessionManager.ConAckReceived(w, cp, ca)
}

// expect registers payload; done is called once with the outcome.
func (s *ackSession) expect(payload []byte, done func(code byte, acked bool)) {
	s.mu.Lock()
	s.want[&payload[0]] = done
	s.mu.Unlock()
}

// forget drops a registration whose publish never reached the session.
func (s *ackSession) forget(payload []byte) {
	s.mu.Lock()
	delete(s.want, &payload[0])
	s.mu.Unlock()
}

func (s *ackSession) AddToSession(ctx context.Context, p session.Packet, resp chan<- packets.ControlPacket) error {
	pb, ok := p.(*packets.Publish)
	if !ok || len(pb.Payload) == 0 {
		return s.SessionManager.AddToSession(ctx, p, resp)
	}
	key := &pb.Payload[0]
	s.mu.Lock()
	done := s.want[key]
	delete(s.want, key)
	s.mu.Unlock()
	if done == nil {
		return s.SessionManager.AddToSession(ctx, p, resp)
	}
	// The sender publishes with AsyncSend: nobody waits on resp.
	if err := s.SessionManager.AddToSession(ctx, p, s.acks); err != nil {
		done(0, false)
		return err
	}
	s.mu.Lock()
	s.byID[pb.PacketID] = append(s.byID[pb.PacketID], done)
	s.mu.Unlock()
	return nil
}

// pinger is paho's keepalive with a tighter bound: it pings once nothing
// has been received for half the keepalive and gives up when that ping is
// not answered within another half, so a link that drops silently (no RST,
// no FIN) is noticed within about 1.1 × keepalive (checked every 1/16 of
// it) instead of paho's 2 ×.
type pinger struct {
	mu       sync.Mutex
	received time.Time
	pingSent time.Time // zero: no ping outstanding
}

func newPinger() *pinger { return &pinger{} }

func (p *pinger) Run(ctx context.Context, conn net.Conn, keepAlive uint16) error {
	if keepAlive == 0 {
		return nil
	}
	k := time.Duration(keepAlive) * time.Second
	p.mu.Lock()
	p.received, p.pingSent = time.Now(), time.Time{}
	p.mu.Unlock()
	t := time.NewTicker(k / 16)
	defer t.Stop()
	errc := make(chan error, 1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case now := <-t.C:
			p.mu.Lock()
			idle, sent := now.Sub(p.received), p.pingSent
			p.mu.Unlock()
			switch {
			case !sent.IsZero() && now.Sub(sent) >= k/2:
				return fmt.Errorf("no answer from the broker for %v (keepalive %v): the link is down", idle.Round(time.Second), k)
			case sent.IsZero() && idle >= k/2:
				p.mu.Lock()
				p.pingSent = now
				p.mu.Unlock()
				go func() {
					if _, err := packets.NewControlPacket(packets.PINGREQ).WriteTo(conn); err != nil {
						select {
						case errc <- fmt.Errorf("send PINGREQ: %w", err):
						default:
						}
					}
				}()
			}
		}
	}
}

func (p *pinger) PacketSent() {}

func (p *pinger) PacketReceived() {
	p.mu.Lock()
	p.received, p.pingSent = time.Now(), time.Time{}
	p.mu.Unlock()
}

func (p *pinger) PingResp() { p.PacketReceived() }

func (p *pinger) SetDebug(paholog.Logger) {}
