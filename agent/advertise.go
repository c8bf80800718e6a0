package agent

import (
	"context"
	"net"
	"slices"
	"time"

	"github.com/edgeagent/agent/discovery"
)

// advertiseLoop keeps the broker advertised on advertise.interfaces
// (zeroconf reads their addresses once, at registration): it
// registers at once, registers again when the interfaces' addresses change
// (DHCP), retries a failed registration (an interface still without an
// address at boot), and withdraws the advertisement when ctx ends.
func (d *Daemon) advertiseLoop(ctx context.Context, every time.Duration) error {
	var adv *discovery.Advertisement
	var addrs []string
	defer func() {
		if adv != nil {
			adv.Stop()
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		now := ifaceAddrs(d.cfg.Advertise.Interfaces)
		if adv == nil || !slices.Equal(now, addrs) {
			if adv != nil {
				adv.Stop()
				adv = nil
			}
			a, err := discovery.Advertise(d.cfg.Advertise.Instance, d.cfg.Broker.Service, d.cfg.Broker.Port,
				[]string{"host=" + d.cfg.Broker.Host}, d.cfg.Advertise.Interfaces)
			if err != nil {
				d.log.Error("not advertising the broker; retrying", "in", every, "err", err)
			} else {
				adv, addrs = a, now
				d.log.Info("advertising the broker", "service", d.cfg.Broker.Service, "port", d.cfg.Broker.Port,
					"interfaces", d.cfg.Advertise.Interfaces, "addresses", now)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ifaceAddrs lists the addresses of the named interfaces, sorted.
func ifaceAddrs(names []string) []string {
	var out []string
	for _, n := range names {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			continue
		}
		as, _ := ifi.Addrs()
		for _, a := range as {
			out = append(out, a.String())
		}
	}
	slices.Sort(out)
	return out
}
