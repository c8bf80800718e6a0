// Package requester is an operator-side MQTT v5 client for tests, the demo
// and the benchmarks: it sends commands with a Response Topic and
// Correlation Data and matches the replies. (It lives apart from brokertest
// because tlsclient's own tests use brokertest.)
package requester

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/internal/brokertest"
	"github.com/edgeagent/agent/tlsclient"
)

// Requester is an MQTT v5 client (paho) that sends commands with a Response
// Topic and Correlation Data and waits for the matching reply: what an
// operator's tool does. It also forwards every other message it receives on
// extra subscriptions to Messages, stamped with the arrival time.
type Requester struct {
	Messages <-chan Arrival

	cm       *autopaho.ConnectionManager
	respTo   string
	mu       sync.Mutex
	waiting  map[string]chan []byte
	next     uint64
	messages chan Arrival
}

// Arrival is a message and when it arrived.
type Arrival struct {
	At      time.Time
	Topic   string
	Payload []byte
}

// New connects to b with creds from fleet f, subscribes to respTopic and
// subs, and returns once subscribed.
func New(ctx context.Context, f *brokertest.Fleet, b *brokertest.Broker, creds brokertest.Creds, respTopic string, subs ...string) (*Requester, error) {
	cr, err := tlsclient.Load(tlsclient.Files{CA: f.CAFile, Cert: creds.Cert, Key: creds.Key}, time.Now())
	if err != nil {
		return nil, err
	}
	tlsCfg := tlsclient.Config(tlsclient.NewHolder(cr), brokertest.BrokerHost, false)
	r := &Requester{respTo: respTopic, waiting: map[string]chan []byte{}, messages: make(chan Arrival, 4096)}
	r.Messages = r.messages
	u := &url.URL{Scheme: "mqtts", Host: net.JoinHostPort(brokertest.BrokerHost, strconv.Itoa(b.Port))}
	ready := make(chan error, 1)
	topics := append([]string{respTopic}, subs...)
	r.cm, err = autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u},
		KeepAlive:  30,
		AttemptConnection: func(ctx context.Context, _ autopaho.ClientConfig, _ *url.URL) (net.Conn, error) {
			c, err := tlsclient.Dial(ctx, b.Addr, tlsCfg)
			if err != nil {
				return nil, err
			}
			return packets.NewThreadSafeConn(c), nil // paho writes a packet in several Writes
		},
		CleanStartOnInitialConnection: true,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				var so []paho.SubscribeOptions
				for _, t := range topics {
					so = append(so, paho.SubscribeOptions{Topic: t, QoS: 1})
				}
				_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: so})
				select {
				case ready <- err:
				default:
				}
			}()
		},
		ClientConfig: paho.ClientConfig{
			ClientID: fmt.Sprintf("requester-%d", time.Now().UnixNano()),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				at := time.Now()
				p := pr.Packet
				if p.Properties != nil && p.Properties.CorrelationData != nil {
					r.mu.Lock()
					ch := r.waiting[string(p.Properties.CorrelationData)]
					delete(r.waiting, string(p.Properties.CorrelationData))
					r.mu.Unlock()
					if ch != nil {
						ch <- p.Payload
						return true, nil
					}
				}
				select {
				case r.messages <- Arrival{At: at, Topic: p.Topic, Payload: p.Payload}:
				default:
				}
				return true, nil
			}},
		},
	})
	if err != nil {
		return nil, err
	}
	select {
	case err := <-ready:
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("requester subscribe: %w", err)
		}
	case <-time.After(10 * time.Second):
		r.Close()
		return nil, fmt.Errorf("requester: not connected to %s within 10s", b.Addr)
	}
	return r, nil
}

// Call publishes payload to topic and returns the reply and the round trip.
func (r *Requester) Call(ctx context.Context, topic string, payload []byte) ([]byte, time.Duration, error) {
	r.mu.Lock()
	r.next++
	corr := strconv.FormatUint(r.next, 10)
	ch := make(chan []byte, 1)
	r.waiting[corr] = ch
	r.mu.Unlock()
	t0 := time.Now()
	_, err := r.cm.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload,
		Properties: &paho.PublishProperties{ResponseTopic: r.respTo, CorrelationData: []byte(corr)}})
	if err != nil {
		return nil, 0, err
	}
	select {
	case p := <-ch:
		return p, time.Since(t0), nil
	case <-ctx.Done():
		r.mu.Lock()
		delete(r.waiting, corr)
		r.mu.Unlock()
		return nil, 0, fmt.Errorf("no reply on %s: %w", r.respTo, ctx.Err())
	}
}

// Publish sends one QoS 1 message.
func (r *Requester) Publish(ctx context.Context, topic string, payload []byte) error {
	_, err := r.cm.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload})
	return err
}

// Close disconnects (bounded).
func (r *Requester) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.cm.Disconnect(ctx)
}
