package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/hostsfile"
	"github.com/edgeagent/agent/tlsclient"
)

const (
	pinnedDialTimeout    = 2 * time.Second // the last verified address: it answers fast or it moved
	candidateDialTimeout = 3 * time.Second
)

// errNoBroker: discovery found nothing that verifies as broker.host.
var errNoBroker = errors.New("no broker found")

// broker remembers the last verified broker address and what is pinned.
type brokerAddr struct {
	mu         sync.Mutex
	good       netip.AddrPort
	zoneWarned atomic.Bool
}

func (b *brokerAddr) last() netip.AddrPort { b.mu.Lock(); defer b.mu.Unlock(); return b.good }
func (b *brokerAddr) set(a netip.AddrPort) { b.mu.Lock(); b.good = a; b.mu.Unlock() }

// dialResult is one racing dial's outcome.
type dialResult struct {
	conn net.Conn
	cand discovery.Candidate
	err  error
}

// closeLate closes the connections the n racers still running deliver
// after a winner was chosen.
func closeLate(results <-chan dialResult, n int) {
	go func() {
		for ; n > 0; n-- {
			if r := <-results; r.conn != nil {
				r.conn.Close()
			}
		}
	}()
}

// dialDiscovered is one connection attempt with discovery: the last
// verified address is redialled while a fresh mDNS lookup runs and its
// candidates are tried in order; the first connection that verifies wins.
// A candidate counts only if the TLS handshake verifies the broker for
// broker.host; every other is skipped with a log line.
func (d *Daemon) dialDiscovered(ctx context.Context) (net.Conn, error) {
	host := d.cfg.Broker.Host
	last := d.broker.last()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan dialResult, 2)
	racers := 1
	if last.IsValid() {
		racers++
		go func() {
			c, err := d.dialAddr(ctx, last, pinnedDialTimeout)
			if err != nil && ctx.Err() == nil {
				d.log.Info("last broker address failed", "addr", last, "cause", tlsclient.Explain(err, host))
			}
			results <- dialResult{c, discovery.Candidate{Addr: last}, err}
		}()
	}
	go func() {
		c, ap, err := d.dialCandidates(ctx, last)
		results <- dialResult{c, discovery.Candidate{Addr: ap}, err}
	}()
	var errs []error
	for i := 0; i < racers; i++ {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		cancel() // the winner: stop the other racer
		closeLate(results, racers-i-1)
		d.broker.set(r.cand.Addr)
		d.pinAsync(r.cand.Addr.Addr())
		return r.conn, nil
	}
	return nil, errors.Join(errs...)
}

// dialCandidates looks the broker up and dials the candidates in order,
// skipping last (dialled by the caller).
func (d *Daemon) dialCandidates(ctx context.Context, last netip.AddrPort) (net.Conn, netip.AddrPort, error) {
	host := d.cfg.Broker.Host
	svcs, err := d.browser.Browse(ctx, d.cfg.Broker.Service, d.cfg.Broker.DiscoverTimeout.Duration)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	cands, skipped := discovery.Candidates(svcs, d.cfg.Broker.Instance, host)
	for _, s := range skipped {
		d.log.Warn("ignoring advertisement", "instance", s.Instance, "reason", s.Reason)
	}
	if len(cands) == 0 {
		return nil, netip.AddrPort{}, fmt.Errorf("%w: mDNS lookup of %s on %s found %d advertisement(s), no usable address for %q: is the broker advertised (Avahi service file or the master's [advertise])?",
			errNoBroker, d.cfg.Broker.Service, ifaceLabel(d.cfg.Broker.Interfaces), len(svcs), host)
	}
	return d.raceCandidates(ctx, cands, last, len(svcs))
}

// candidateStagger is how long a candidate gets before the next one is
// dialled too: candidates are started in order, but one that never answers
// (a spoofer dropping packets) cannot hold up the rest.
const candidateStagger = 250 * time.Millisecond

// raceCandidates dials the candidates in order, starting the next one when
// the previous failed or after candidateStagger, and returns the first
// connection that verifies.
func (d *Daemon) raceCandidates(ctx context.Context, cands []discovery.Candidate, last netip.AddrPort, found int) (net.Conn, netip.AddrPort, error) {
	host := d.cfg.Broker.Host
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan dialResult, len(cands))
	next, pending := 0, 0
	launch := func() {
		for next < len(cands) && cands[next].Addr == last {
			next++ // the caller redials it
		}
		if next == len(cands) {
			return
		}
		c := cands[next]
		next++
		pending++
		go func() {
			conn, err := d.dialAddr(ctx, c.Addr, candidateDialTimeout)
			results <- dialResult{conn, c, err}
		}()
	}
	launch()
	stagger := time.NewTimer(candidateStagger)
	defer stagger.Stop()
	tried := 0
	for pending > 0 {
		select {
		case <-stagger.C:
			launch()
			stagger.Reset(candidateStagger)
		case r := <-results:
			pending--
			tried++
			if r.err == nil {
				cancel()
				closeLate(results, pending)
				d.log.Info("discovered broker", "instance", r.cand.Instance, "addr", r.cand.Addr)
				return r.conn, r.cand.Addr, nil
			}
			if ctx.Err() == nil {
				d.log.Warn("skipping advertised broker: it is not "+host, "instance", r.cand.Instance, "addr", r.cand.Addr, "cause", tlsclient.Explain(r.err, host))
			}
			if pending == 0 {
				launch()
			}
		}
	}
	return nil, netip.AddrPort{}, fmt.Errorf("%w: mDNS lookup of %s on %s found %d advertisement(s), %d new address(es) tried, none verified as %q: is the broker advertised (Avahi service file or the master's [advertise]) and its certificate issued for %s?",
		errNoBroker, d.cfg.Broker.Service, ifaceLabel(d.cfg.Broker.Interfaces), found, tried, host, host)
}

func ifaceLabel(names []string) string {
	if len(names) == 0 {
		return "all multicast interfaces"
	}
	return fmt.Sprint(names)
}

// dialAddr dials one address with TLS verified for broker.host.
func (d *Daemon) dialAddr(ctx context.Context, ap netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := tlsclient.Dial(ctx, ap.String(), d.tlsConf)
	if err != nil {
		return nil, err // not a typed nil *tls.Conn in a net.Conn
	}
	return c, nil
}

// pinAsync hands addr to the pinner: the hosts file is written off the
// connection path (its lock and fsyncs must not delay or hang a connect),
// and only the latest address matters.
func (d *Daemon) pinAsync(addr netip.Addr) {
	if d.cfg.Broker.HostsFile == "" {
		return
	}
	for {
		select {
		case d.pins <- addr:
			return
		default:
			select {
			case <-d.pins: // drop a stale one
			default:
			}
		}
	}
}

// pinLoop writes each address handed to pinAsync, until ctx ends.
func (d *Daemon) pinLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case a := <-d.pins:
			d.pin(a)
		}
	}
}

// pin writes broker.host → addr into the hosts file, for the other clients
// on the board; a failure is logged, never fatal (the agent dials the
// verified address itself). An unchanged file is not written (hostsfile
// compares), so a block someone deleted comes back on the next connect.
func (d *Daemon) pin(addr netip.Addr) {
	path := d.cfg.Broker.HostsFile
	if addr.Zone() != "" {
		if d.broker.zoneWarned.CompareAndSwap(false, true) {
			d.log.Warn("not pinning a link-local broker address: a hosts file cannot say which interface", "addr", addr)
		}
		return
	}
	changed, conflicts, err := hostsfile.Update(path, []hostsfile.Pin{{Name: d.cfg.Broker.Host, Addrs: []netip.Addr{addr}}})
	if err != nil {
		d.log.Warn("could not pin the broker in the hosts file; other clients on this board will not find it by name", "file", path, "err", err)
		return
	}
	if changed {
		d.log.Info("pinned broker name", "file", path, "name", d.cfg.Broker.Host, "addr", addr)
	}
	for _, c := range conflicts {
		d.log.Warn("hosts file maps the broker name outside the agent's block too; left as is", "file", path, "line", c.Line, "text", c.Text)
	}
}

// dialFixed dials broker.address (or broker.host), and pins a fixed address
// once verified.
func (d *Daemon) dialFixed(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	addr := net.JoinHostPort(d.dialHost(), strconv.Itoa(d.cfg.Broker.Port))
	c, err := tlsclient.Dial(ctx, addr, d.tlsConf)
	if err != nil {
		return nil, err
	}
	if d.cfg.Broker.Address != "" {
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			d.pinAsync(ap.Addr().Unmap())
		}
	}
	return c, nil
}
