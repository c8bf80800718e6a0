package agent

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/homeassistant"
	"github.com/edgeagent/agent/sensors"
)

// haCollectWindow is how long the retained discovery configs already on the
// broker are collected after subscribing (Mosquitto sends them right after
// the SUBACK).
const haCollectWindow = 300 * time.Millisecond

// haCollector gathers the topics of retained configs while announcing.
type haCollector struct {
	mu     sync.Mutex
	active bool
	topics []string
}

func (c *haCollector) start() { c.mu.Lock(); c.active, c.topics = true, nil; c.mu.Unlock() }
func (c *haCollector) stop() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active = false
	return c.topics
}
func (c *haCollector) add(topic string, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active && len(payload) > 0 {
		c.topics = append(c.topics, topic)
	}
}

func (d *Daemon) haDevice() (homeassistant.Device, homeassistant.Topics) {
	name := d.cfg.HA.Name
	if name == "" {
		name = d.id
	}
	return homeassistant.Device{ID: d.id, Name: name, Version: d.version, Model: "edge agent (" + d.cfg.Role + ")"},
		homeassistant.Topics{Prefix: d.cfg.HA.Prefix, Base: d.topics.base}
}

// announceHA publishes the retained discovery configs, and empties those
// of entities no longer configured.
func (d *Daemon) announceHA(ctx context.Context) {
	dev, tp := d.haDevice()
	filter := homeassistant.ConfigFilter(dev, tp)
	d.ha.start()
	sa, err := d.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err == nil && sa != nil && len(sa.Reasons) > 0 && sa.Reasons[0] >= 0x80 {
		d.log.Warn("cannot read the Home Assistant configs already published; entities of removed sensors stay", "filter", filter,
			"hint", "the ACL needs `pattern readwrite "+tp.Prefix+"/+/%u/#`")
	}
	select {
	case <-ctx.Done():
	case <-time.After(haCollectWindow):
	}
	existing := d.ha.stop()
	_, _ = d.cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{filter}})

	var ss []homeassistant.Sensor
	for _, s := range d.sensors {
		var keys []string
		if k, ok := s.(sensors.Keyed); ok {
			keys = k.Keys()
		}
		ss = append(ss, homeassistant.Sensor{Name: s.Name(), Type: s.Type(), Keys: keys})
	}
	var as []homeassistant.Actuator
	for _, a := range d.actuators {
		as = append(as, homeassistant.Actuator{Name: a.Name(), Type: a.Type()})
	}
	msgs := homeassistant.Configs(dev, tp, ss, as)
	stale := homeassistant.Stale(existing, msgs)
	for _, m := range append(msgs, stale...) {
		if err := d.publish(ctx, m.Topic, m.Payload, true, nil); err != nil {
			d.log.Warn("Home Assistant config not published", "topic", m.Topic, "err", err)
		}
	}
	d.log.Info("Home Assistant discovery published", "entities", len(msgs), "removed", len(stale))
}

func isHAConfig(topic, prefix string) bool {
	return strings.HasPrefix(topic, prefix+"/") && strings.HasSuffix(topic, "/config")
}
