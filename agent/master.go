package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// The master's fleet view: it subscribes to every device's status and
// telemetry, keeps a fleet.Tracker, and publishes the summary, retained, at
// <prefix>/<id>/fleet: within fleetEvery of a change (a device appears,
// goes on- or offline, reports an error…), and every fleetRefresh when only
// last-seen times moved, so a busy fleet of thousands does not make the
// master republish a megabyte every second.

const (
	fleetEvery   = time.Second
	fleetRefresh = 30 * time.Second
)

// FleetTopic is where a master publishes its fleet summary.
func FleetTopic(prefix, masterID string) string { return prefix + "/" + masterID + "/fleet" }

// subscribeFleet subscribes a master to the devices' status and telemetry,
// both at QoS 0: at each (re)connection the broker sends every retained
// status at once, and thousands of them at QoS 1 would overflow its queue
// of in-flight messages per client (Mosquitto: 20 in flight + 1000 queued)
// and be dropped. On a live connection QoS 0 is lost only with the
// connection, and the next connection sends the retained statuses again.
func (d *Daemon) subscribeFleet(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	status, telemetry := d.fleet.Topics()
	sa, err := d.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: status, QoS: 0}, {Topic: telemetry, QoS: 0},
	}})
	if err != nil {
		return err
	}
	for i, r := range sa.Reasons {
		if r >= 0x80 {
			return fmt.Errorf("broker refused the subscription %d (reason 0x%02x): the ACL must let the master %q read %s/# (`user %s` / `topic readwrite %s/#`; agent broker-config writes it)",
				i, r, d.id, d.cfg.MQTT.Prefix, d.id, d.cfg.MQTT.Prefix)
		}
	}
	return nil
}

// fleetLoop publishes the summary when the view changed, while connected.
func (d *Daemon) fleetLoop(ctx context.Context) error {
	t := time.NewTicker(fleetEvery)
	defer t.Stop()
	topic := FleetTopic(d.cfg.MQTT.Prefix, d.id)
	var published, seen uint64
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, s := d.fleet.Version(), d.fleet.Seen()
		lctx := d.link.current()
		due := v != published || (s != seen && time.Since(last) >= fleetRefresh)
		if !due || lctx == nil {
			continue
		}
		sum := d.fleet.Snapshot(d.now())
		sum.Master = d.id
		if err := d.publishJSON(lctx, topic, sum, true, nil); err != nil {
			d.log.Warn("fleet summary not published", "topic", topic, "err", err)
			continue
		}
		published, seen, last = v, s, time.Now()
	}
}
