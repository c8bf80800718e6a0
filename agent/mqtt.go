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

	mu    sync.Mutex
	cli   *paho.Client
	ready chan struct{} // closed while a connection is up; replaced when it goes down
	stop  bool
	done  chan struct{} // closed when run returns
}

func newMQTTLink(d *Daemon) *mqttLink {
	return &mqttLink{d: d, sess: newAckSession(state.NewInMemory()), ready: make(chan struct{}), done: make(chan struct{})}
}

// run connects and reconnects until ctx ends or Disconnect is called.
func (m *mqttLink) run(ctx context.Context) {
	defer close(m.done)
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
		cli, err := m.connect(ctx, first)
		if err != nil {
			if ctx.Err() != nil || m.stopping() {
				return
			}
			attempt++
			why := d.explainConnect(err)
			d.setLastError(why)
			d.log.Warn("broker connection failed", "broker", d.brokerLabel(), "cause", why)
			continue
		}
		first, attempt = false, 0
		m.mu.Lock()
		m.cli = cli
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
func (m *mqttLink) connect(ctx context.Context, first bool) (*paho.Client, error) {
	d := m.d
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := d.dial(dctx)
	if err != nil {
		return nil, err
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
			return nil, &connackError{code: ca.ReasonCode, reason: reason}
		}
		return nil, err
	}
	return cli, nil
}

func (m *mqttLink) up() {
	d := m.d
	d.attempt.reset()
	d.flaps.up(d.now())
	d.reconnects.Add(1)
	d.log.Info("connected", "broker", d.brokerLabel())
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
	cli := m.cli
	m.mu.Unlock()
	if cli != nil {
		code := byte(0)
		if withWill {
			code = 0x04
		}
		_ = cli.Disconnect(&paho.Disconnect{ReasonCode: code})
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
// on reconnect).
type ackSession struct {
	session.SessionManager
	mu   sync.Mutex
	want map[*byte]func(code byte, acked bool)
	// lost is closed when the broker starts a new session: paho then drops
	// the packets in flight without a word, and their waiters must end.
	lost chan struct{}
}

func newAckSession(inner session.SessionManager) *ackSession {
	return &ackSession{SessionManager: inner, want: map[*byte]func(byte, bool){}, lost: make(chan struct{})}
}

// ConAckReceived ends the waits of the packets a new session discards.
func (s *ackSession) ConAckReceived(w io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	if !ca.SessionPresent {
		s.mu.Lock()
		close(s.lost)
		s.lost = make(chan struct{})
		s.mu.Unlock()
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
	lost := s.lost
	s.mu.Unlock()
	if done == nil {
		return s.SessionManager.AddToSession(ctx, p, resp)
	}
	mid := make(chan packets.ControlPacket, 1)
	if err := s.SessionManager.AddToSession(ctx, p, mid); err != nil {
		done(0, false)
		return err
	}
	go func() {
		var cp packets.ControlPacket
		select {
		case cp = <-mid:
		case <-lost:
			done(0, false)
			return
		}
		select {
		case resp <- cp: // paho's own waiter (none for AsyncSend; resp is buffered)
		default:
		}
		if pa, ok := cp.Content.(*packets.Puback); ok && cp.Type == packets.PUBACK {
			done(pa.ReasonCode, true)
			return
		}
		done(0, false)
	}()
	return nil
}

// pinger is paho's keepalive with a tighter bound: it pings once nothing
// has been received for half the keepalive and gives up when that ping is
// not answered within another half, so a link that drops silently (no RST,
// no FIN) is noticed within about 1.25 × keepalive instead of paho's 2 ×.
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
	t := time.NewTicker(k / 8)
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
