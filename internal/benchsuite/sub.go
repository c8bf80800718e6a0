package benchsuite

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/internal/brokertest"
)

// subscriber is the independent observer: an MQTT v5 connection as
// "monitor" subscribed at QoS 1 to the device's telemetry, stamping every
// message on arrival. One connection serves the whole run; each measure
// installs its own watch.
type subscriber struct {
	c   *paho.Client
	cur atomic.Pointer[watch]
}

func dialSubscriber(ctx context.Context, f *brokertest.Fleet, b *brokertest.Broker, filter string) (*subscriber, error) {
	cert, err := tls.LoadX509KeyPair(f.Monitor.Cert, f.Monitor.Key)
	if err != nil {
		return nil, fmt.Errorf("subscriber: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.CA.Cert)
	d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: brokertest.BrokerHost,
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", b.Addr)
	if err != nil {
		return nil, fmt.Errorf("subscriber: dial %s: %w", b.Addr, err)
	}
	s := &subscriber{}
	s.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			at := time.Now()
			if w := s.cur.Load(); w != nil {
				w.see(at, pr.Packet.Topic, pr.Packet.Payload)
			}
			return true, nil
		}},
	})
	if _, err := s.c.Connect(dctx, &paho.Connect{ClientID: fmt.Sprintf("agent-bench-%d", os.Getpid()), CleanStart: true, KeepAlive: 60}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("subscriber: connect: %w", err)
	}
	if _, err := s.c.Subscribe(dctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		s.close()
		return nil, fmt.Errorf("subscriber: subscribe %s: %w", filter, err)
	}
	return s, nil
}

func (s *subscriber) close() {
	_ = s.c.Disconnect(&paho.Disconnect{})
	select {
	case <-s.c.Done():
	case <-time.After(2 * time.Second):
	}
}

// watch counts messages on topics starting with prefix. With want > 0 it
// waits for the readings with seq 1..want, each seen at least once;
// messages with other seqs (a previous process's stragglers) are counted
// as strays and not timed.
func (s *subscriber) watch(prefix string, want int) *watch {
	w := &watch{prefix: prefix, want: want, done: make(chan struct{})}
	if want > 0 {
		w.seen = make([]bool, want+1)
	}
	s.cur.Store(w)
	return w
}

type watch struct {
	prefix string
	want   int
	done   chan struct{}

	mu          sync.Mutex
	seen        []bool
	unique      int
	total       int // messages on prefix, strays included
	dups, stray int
	outOfOrder  int // a seq lower than the one before
	lastSeq     int
	first, last time.Time
}

func (w *watch) see(at time.Time, topic string, payload []byte) {
	if !strings.HasPrefix(topic, w.prefix) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.total++
	if w.want == 0 {
		if w.first.IsZero() {
			w.first = at
		}
		w.last = at
		return
	}
	seq := parseSeq(payload)
	if seq < 1 || seq > w.want || w.unique == w.want {
		w.stray++
		return
	}
	if w.first.IsZero() {
		w.first = at
	}
	if seq < w.lastSeq {
		w.outOfOrder++
	}
	w.lastSeq = seq
	if w.seen[seq] {
		w.dups++
		return
	}
	w.seen[seq] = true
	w.unique++
	if w.unique == w.want {
		w.last = at
		close(w.done)
	}
}

// wait returns once every wanted reading has arrived, or an error after
// limit saying how far it got.
func (w *watch) wait(ctx context.Context, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		st := w.stats()
		return fmt.Errorf("%d of %d readings on %s within %v", st.unique, w.want, w.prefix, limit)
	}
}

type watchStats struct {
	unique, total, dups, stray, outOfOrder int
	first, last                            time.Time
}

func (w *watch) stats() watchStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return watchStats{w.unique, w.total, w.dups, w.stray, w.outOfOrder, w.first, w.last}
}

// parseSeq reads the "seq" of a telemetry payload without decoding the
// rest (the subscriber must keep up with tens of thousands a second).
func parseSeq(p []byte) int {
	i := bytes.Index(p, []byte(`"seq":`))
	if i < 0 {
		return -1
	}
	p = bytes.TrimLeft(p[i+len(`"seq":`):], " ")
	n, digits := 0, 0
	for _, c := range p {
		if c < '0' || c > '9' || digits > 9 {
			break
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if digits == 0 {
		return -1
	}
	return n
}
