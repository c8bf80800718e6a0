// Package operator is the operator's side of the fleet, used by `agent
// fleet`, `agent send` and `agent watch` on the master board: one MQTT v5
// connection with the master's own certificate (from its config), and the
// three things an operator does with it: read the fleet from the retained
// statuses, send a command and wait for its answer, and stream telemetry.
//
//	c, err := operator.Dial(ctx, cfg) // the master's config
//	defer c.Close()
//	rep, err := c.Send(ctx, "dev1", "set", map[string]any{"actuator": "relay1", "value": "on"}, 5*time.Second)
package operator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/agent/fleet"
	"github.com/edgeagent/agent/tlsclient"
)

// ErrTimeout is returned by Send when no reply came in time.
var ErrTimeout = errors.New("no reply")

// Client is one operator connection.
type Client struct {
	c      *paho.Client
	id     string // our identity (the certificate's CN)
	prefix string

	mu   sync.Mutex
	subs []*sub
}

// sub receives the messages matching one topic filter.
type sub struct {
	filter string
	ch     chan *paho.Publish
}

// Dial connects with the config's broker and credentials. The client id is
// the certificate's CN with a random suffix, so it never takes over the
// daemon's session.
func Dial(ctx context.Context, cfg *config.Config) (*Client, error) {
	creds, err := tlsclient.Load(tlsclient.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}, time.Now())
	if err != nil {
		return nil, err
	}
	id := creds.Cert.Leaf.Subject.CommonName
	host := cfg.Broker.Address
	if host == "" {
		host = cfg.Broker.Host
	}
	addr := net.JoinHostPort(host, strconv.Itoa(cfg.Broker.Port))
	tc := tlsclient.Config(tlsclient.NewHolder(creds), cfg.Broker.Host, cfg.TLS.LegacyCN)
	conn, err := tlsclient.Dial(ctx, addr, tc)
	if err != nil {
		return nil, fmt.Errorf("connect to the broker at %s: %s", addr, tlsclient.Explain(err, cfg.Broker.Host))
	}
	o := &Client{id: id, prefix: cfg.MQTT.Prefix}
	o.c = paho.NewClient(paho.ClientConfig{
		Conn:              packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){o.route},
	})
	ca, err := o.c.Connect(ctx, &paho.Connect{ClientID: id + "-cli-" + randHex(4), CleanStart: true, KeepAlive: 30})
	if err != nil {
		conn.Close()
		if ca != nil {
			return nil, fmt.Errorf("the broker at %s refused the connection: reason 0x%02x %s", addr, ca.ReasonCode, connackText(ca))
		}
		return nil, fmt.Errorf("MQTT connect to %s: %s", addr, tlsclient.Explain(err, cfg.Broker.Host))
	}
	return o, nil
}

func connackText(ca *paho.Connack) string {
	if ca.Properties != nil && ca.Properties.ReasonString != "" {
		return ca.Properties.ReasonString
	}
	return ""
}

// ID is the identity the broker knows us by (the certificate's CN).
func (o *Client) ID() string { return o.id }

// Close disconnects.
func (o *Client) Close() {
	_ = o.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
}

// route hands a message to every subscription whose filter matches. It
// blocks (with the reader) when a consumer is slow: the operator's reads
// are short and bounded by their own contexts.
func (o *Client) route(pr paho.PublishReceived) (bool, error) {
	o.mu.Lock()
	subs := append([]*sub(nil), o.subs...)
	o.mu.Unlock()
	for _, s := range subs {
		if match(s.filter, pr.Packet.Topic) {
			select {
			case s.ch <- pr.Packet:
			case <-time.After(5 * time.Second): // a consumer that went away
			}
		}
	}
	return true, nil
}

// subscribe registers the filters before subscribing, so no message is
// missed, and returns the channel they arrive on.
func (o *Client) subscribe(ctx context.Context, qos byte, filters ...string) (chan *paho.Publish, error) {
	ch := make(chan *paho.Publish, 1024)
	o.mu.Lock()
	for _, f := range filters {
		o.subs = append(o.subs, &sub{filter: f, ch: ch})
	}
	o.mu.Unlock()
	var so []paho.SubscribeOptions
	for _, f := range filters {
		so = append(so, paho.SubscribeOptions{Topic: f, QoS: qos})
	}
	sa, err := o.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: so})
	if err != nil {
		return nil, fmt.Errorf("subscribe %v: %w", filters, err)
	}
	for i, r := range sa.Reasons {
		if r >= 0x80 {
			return nil, fmt.Errorf("the broker refused the subscription to %s (reason 0x%02x): the ACL must let %q read %s/# (agent broker-config --master %s)",
				filters[i], r, o.id, o.prefix, o.id)
		}
	}
	return ch, nil
}

// match reports whether topic matches the MQTT filter.
func match(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		if level == "#" {
			return true
		}
		if i >= len(t) || (level != "+" && level != t[i]) {
			return false
		}
	}
	return len(f) == len(t)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Status is a device's retained status as the fleet table shows it.
type Status = fleet.Device

// Fleet reads the retained statuses of every device and the masters'
// retained fleet summaries, and merges them: state, version, role and
// certificate expiry from the status; last seen and last error from a
// summary when a master publishes one. It returns once every retained
// message has arrived (a marker published after subscribing comes back
// last) or ctx ends.
func (o *Client) Fleet(ctx context.Context) ([]Status, error) {
	marker := o.prefix + "/" + o.id + "/cli/" + randHex(8)
	// QoS 0: thousands of retained statuses would overflow the broker's
	// per-client queue of in-flight QoS 1 messages and be dropped.
	ch, err := o.subscribe(ctx, 0, o.prefix+"/+/status", o.prefix+"/+/fleet", marker)
	if err != nil {
		return nil, err
	}
	if _, err := o.c.Publish(ctx, &paho.Publish{Topic: marker, QoS: 1, Payload: []byte("end")}); err != nil {
		return nil, fmt.Errorf("publish %s: %w", marker, err)
	}
	tr := fleet.NewTracker(o.prefix, 0)
	var summaries []fleet.Summary
	now := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reading the retained statuses: %w", ctx.Err())
		case p := <-ch:
			switch {
			case p.Topic == marker:
				return merge(tr.Snapshot(now), summaries), nil
			case strings.HasSuffix(p.Topic, "/fleet"):
				var s fleet.Summary
				if json.Unmarshal(p.Payload, &s) == nil {
					summaries = append(summaries, s)
				}
			default:
				tr.Observe(p.Topic, p.Payload, now)
			}
		}
	}
}

// merge adds what the masters' summaries know (telemetry seen since the
// status, errors) to the statuses.
func merge(s fleet.Summary, summaries []fleet.Summary) []Status {
	byID := map[string]*Status{}
	out := s.Devices
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	var extra []Status
	for _, sum := range summaries {
		for _, d := range sum.Devices {
			cur := byID[d.ID]
			if cur == nil {
				extra = append(extra, d) // seen in telemetry only
				continue
			}
			if d.LastSeen.After(cur.LastSeen) {
				cur.LastSeen = d.LastSeen
			}
			if cur.LastError == "" {
				cur.LastError = d.LastError
			}
		}
	}
	return append(out, extra...)
}

// Reply is a device's answer to a command.
type Reply struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Raw    []byte          `json:"-"`
	RTT    time.Duration   `json:"-"`
}

// Send sends a command to device id with a Response Topic under
// <prefix>/<id>/reply/ (the device's ACL lets it write there) and
// Correlation Data, and waits up to timeout for the matching reply. The
// command expires with the timeout, so a device that comes back later does
// not act on it. ErrTimeout means no reply.
func (o *Client) Send(ctx context.Context, id, action string, args map[string]any, timeout time.Duration) (*Reply, error) {
	if !config.ValidID(id) {
		return nil, fmt.Errorf("%q is not a device id (1-64 letters, digits, '.', '_' or '-', starting with a letter or digit)", id)
	}
	if !actionRE(action) {
		return nil, fmt.Errorf("%q is not an action (letters, digits and '_', like ping, read or set)", action)
	}
	cid := randHex(8)
	respTopic := o.prefix + "/" + id + "/reply/" + randHex(8)
	ch, err := o.subscribe(ctx, 1, respTopic)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	cmd := map[string]any{"id": cid, "action": action, "expires": deadline.UTC().Format(time.RFC3339Nano)}
	if len(args) > 0 {
		cmd["args"] = args
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	cmdTopic := o.prefix + "/" + id + "/cmd"
	start := time.Now()
	pr, err := o.c.Publish(ctx, &paho.Publish{Topic: cmdTopic, QoS: 1, Payload: payload,
		Properties: &paho.PublishProperties{ResponseTopic: respTopic, CorrelationData: []byte(cid), ContentType: "application/json"}})
	if err == nil && pr != nil && pr.ReasonCode == 0x10 { // no matching subscribers: nobody will answer
		return nil, fmt.Errorf("%w: %s is not connected and has no session on the broker (nothing subscribes to %s)", ErrTimeout, id, cmdTopic)
	}
	if err != nil {
		if pr != nil && pr.ReasonCode >= 0x80 {
			return nil, fmt.Errorf("the broker refused the command to %s (reason 0x%02x): the ACL must let %q write %s/+/cmd", cmdTopic, pr.ReasonCode, o.id, o.prefix)
		}
		return nil, fmt.Errorf("publish %s: %w", cmdTopic, err)
	}
	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait.C:
			return nil, fmt.Errorf("%w from %s within %v (offline, busy, or not running the agent)", ErrTimeout, id, timeout)
		case p := <-ch:
			if p.Properties == nil || string(p.Properties.CorrelationData) != cid {
				continue
			}
			r := &Reply{Raw: p.Payload, RTT: time.Since(start)}
			if err := json.Unmarshal(p.Payload, r); err != nil {
				return nil, fmt.Errorf("%s answered with something that is not a reply: %q", id, p.Payload)
			}
			return r, nil
		}
	}
}

func actionRE(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// PublishRetained publishes payload retained at topic, QoS 1 (tools and
// tests: clearing a stale status with an empty payload, say).
func (o *Client) PublishRetained(ctx context.Context, topic string, payload []byte) error {
	pr, err := o.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: payload})
	if err == nil && pr != nil && pr.ReasonCode >= 0x80 {
		err = fmt.Errorf("reason 0x%02x", pr.ReasonCode)
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Reading is one telemetry message.
type Reading struct {
	Device, Sensor string
	Payload        []byte
}

// Watch streams the telemetry of device id (all when "") and sensor (all
// when "") to fn until ctx ends.
func (o *Client) Watch(ctx context.Context, id, sensor string, fn func(Reading)) error {
	dev, sen := "+", "+"
	if id != "" {
		if !config.ValidID(id) {
			return fmt.Errorf("%q is not a device id", id)
		}
		dev = id
	}
	if sensor != "" {
		if !config.ValidID(sensor) {
			return fmt.Errorf("%q is not a sensor name", sensor)
		}
		sen = sensor
	}
	ch, err := o.subscribe(ctx, 0, o.prefix+"/"+dev+"/telemetry/"+sen)
	if err != nil {
		return err
	}
	done := o.c.Done()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			return errors.New("the broker closed the connection")
		case p := <-ch:
			parts := strings.Split(p.Topic, "/")
			if len(parts) == 4 {
				fn(Reading{Device: parts[1], Sensor: parts[3], Payload: p.Payload})
			}
		}
	}
}
