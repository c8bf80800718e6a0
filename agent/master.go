package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// The master's fleet view: it subscribes to every device's status and
// telemetry, keeps a fleet.Tracker, and publishes the summary, retained, at
// <prefix>/<id>/fleet when it changes (at most once per fleetEvery).

const fleetEvery = time.Second

// FleetTopic is where a master publishes its fleet summary.
func FleetTopic(prefix, masterID string) string { return prefix + "/" + masterID + "/fleet" }

// subscribeFleet subscribes a master to the devices' status (QoS 1: each
// change counts) and telemetry (QoS 0: only "last seen" and errors are
// read from it, and a master beside a busy fleet must not hold it in
// flight).
func (d *Daemon) subscribeFleet(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	status, telemetry := d.fleet.Topics()
	sa, err := d.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: status, QoS: 1}, {Topic: telemetry, QoS: 0},
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
	var published uint64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v := d.fleet.Version()
		lctx := d.link.current()
		if v == published || lctx == nil {
			continue
		}
		sum := d.fleet.Snapshot(d.now())
		sum.Master = d.id
		if err := d.publishJSON(lctx, topic, sum, true, nil); err != nil {
			d.log.Warn("fleet summary not published", "topic", topic, "err", err)
			continue
		}
		published = v
	}
}
