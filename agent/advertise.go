package agent

import (
	"context"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/pki/est"
)

// advertiseLoop keeps the broker advertised on advertise.interfaces
// (zeroconf reads their addresses once, at registration): it
// registers at once, registers again when the interfaces' addresses change
// (DHCP), retries a failed registration (an interface still without an
// address at boot), and withdraws the advertisement when ctx ends.
func (d *Daemon) advertiseLoop(ctx context.Context, every time.Duration) error {
	var adv []*discovery.Advertisement
	var addrs []string
	stop := func() {
		for _, a := range adv {
			a.Stop()
		}
		adv = nil
	}
	defer stop()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		now := ifaceAddrs(d.cfg.Advertise.Interfaces)
		if adv == nil || !slices.Equal(now, addrs) {
			stop()
			a, err := d.advertise()
			if err != nil {
				stop()
				d.log.Error("not advertising the broker; retrying", "in", every, "err", err)
			} else {
				adv, addrs = a, now
				d.log.Info("advertising the broker", "service", d.cfg.Broker.Service, "port", d.cfg.Broker.Port,
					"interfaces", d.cfg.Advertise.Interfaces, "addresses", now, "enrollment", d.estLn != nil)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// advertise registers the broker and, when this master serves enrollment,
// its EST server (discovery.EnrollService), for `agent enroll` without
// --server.
func (d *Daemon) advertise() ([]*discovery.Advertisement, error) {
	a, err := discovery.Advertise(d.cfg.Advertise.Instance, d.cfg.Broker.Service, d.cfg.Broker.Port,
		[]string{"host=" + d.cfg.Broker.Host}, d.cfg.Advertise.Interfaces)
	if err != nil {
		return nil, err
	}
	out := []*discovery.Advertisement{a}
	if d.estLn != nil {
		_, port, _ := net.SplitHostPort(d.estLn.Addr().String())
		p, _ := strconv.Atoi(port)
		h, _ := os.Hostname()
		e, err := discovery.Advertise("Enrollment on "+h, discovery.EnrollService, p,
			[]string{"path=" + est.PathPrefix}, d.cfg.Advertise.Interfaces)
		if err != nil {
			a.Stop()
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
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
