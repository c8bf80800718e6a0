package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/grandcat/zeroconf"
)

// IP versions to browse on.
const (
	IPv4 = "4"
	IPv6 = "6"
	Both = "both"
)

// Zeroconf is the Browser backed by github.com/grandcat/zeroconf v1.0.0.
// That version has defects this type is built around:
//   - a long browse stops querying after about 15 minutes, and reports each
//     instance once (no update when its address changes): so every Browse is
//     a short one-shot lookup with a fresh resolver;
//   - its entries channel send blocks, so a consumer that stops reading leaks
//     its goroutine: so the channel is drained until the library closes it,
//     which it does when the lookup's context ends;
//   - a failed IPv6 multicast join fails the whole resolver: so "both" falls
//     back to IPv4 alone, with a log line.
type Zeroconf struct {
	Interfaces []string // names; empty: every multicast-capable interface
	IPVersion  string   // IPv4, IPv6 or Both ("" is Both)
	Logger     *slog.Logger
	// Settle is how long to keep listening after the first answer for
	// further instances (0: 300 ms).
	Settle time.Duration
}

// Browse implements Browser.
func (z *Zeroconf) Browse(ctx context.Context, service string, window time.Duration) ([]Service, error) {
	ifaces, err := Interfaces(z.Interfaces)
	if err != nil {
		return nil, err
	}
	res, err := z.resolver(ifaces)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	entries := make(chan *zeroconf.ServiceEntry)
	if err := res.Browse(ctx, service, "local.", entries); err != nil {
		cancel()
		drain(entries)
		return nil, fmt.Errorf("discovery: browse %s: %w", service, err)
	}
	settle := z.Settle
	if settle == 0 {
		settle = 300 * time.Millisecond
	}
	var out []Service
	var settleC <-chan time.Time
	for e := range entries { // closed by the library once ctx ends
		out = append(out, fromEntry(e))
		if settleC == nil {
			t := time.NewTimer(settle)
			defer t.Stop()
			settleC = t.C
			go func() {
				select {
				case <-settleC:
					cancel()
				case <-ctx.Done():
				}
			}()
		}
	}
	return out, nil
}

func drain(ch <-chan *zeroconf.ServiceEntry) {
	for range ch {
	}
}

func (z *Zeroconf) resolver(ifaces []net.Interface) (*zeroconf.Resolver, error) {
	opts := []zeroconf.ClientOption{zeroconf.SelectIfaces(ifaces)}
	switch z.IPVersion {
	case IPv4:
		opts = append(opts, zeroconf.SelectIPTraffic(zeroconf.IPv4))
	case IPv6:
		opts = append(opts, zeroconf.SelectIPTraffic(zeroconf.IPv6))
	}
	r, err := zeroconf.NewResolver(opts...)
	if err == nil || (z.IPVersion != Both && z.IPVersion != "") {
		if err != nil {
			return nil, fmt.Errorf("discovery: join the mDNS multicast group (IPv%s) on %s: %w", z.IPVersion, names(ifaces), err)
		}
		return r, nil
	}
	r, err4 := zeroconf.NewResolver(zeroconf.SelectIfaces(ifaces), zeroconf.SelectIPTraffic(zeroconf.IPv4))
	if err4 != nil {
		return nil, fmt.Errorf("discovery: join the mDNS multicast groups on %s: %w", names(ifaces), errors.Join(err, err4))
	}
	if z.Logger != nil {
		z.Logger.Warn("mDNS over IPv6 unavailable; browsing over IPv4 only (set broker.ip_version = \"4\" to silence this)", "err", err)
	}
	return r, nil
}

func fromEntry(e *zeroconf.ServiceEntry) Service {
	s := Service{Instance: Unescape(e.Instance), Host: e.HostName, Port: e.Port, TXT: e.Text}
	for _, ip := range append(append([]net.IP{}, e.AddrIPv4...), e.AddrIPv6...) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			s.Addrs = append(s.Addrs, a.Unmap())
		}
	}
	return s
}

// Interfaces resolves interface names (empty: all up, multicast-capable,
// non-loopback ones) and says which name is missing.
func Interfaces(want []string) ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("discovery: list interfaces: %w", err)
	}
	if len(want) == 0 {
		var out []net.Interface
		for _, i := range all {
			if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagMulticast != 0 && i.Flags&net.FlagLoopback == 0 {
				out = append(out, i)
			}
		}
		if len(out) == 0 {
			return nil, errors.New("discovery: no interface is up and multicast-capable")
		}
		return out, nil
	}
	var out []net.Interface
	for _, n := range want {
		i, err := net.InterfaceByName(n)
		if err != nil {
			return nil, fmt.Errorf("discovery: interface %q: %w (have: %s)", n, err, names(all))
		}
		out = append(out, *i)
	}
	return out, nil
}

func names(ifs []net.Interface) string {
	s := ""
	for i, f := range ifs {
		if i > 0 {
			s += ", "
		}
		s += f.Name
	}
	return s
}

// Advertisement is a running DNS-SD registration.
type Advertisement struct{ srv *zeroconf.Server }

// Advertise registers instance of service on port with txt, on ifaces
// (names; required: advertising is never on every interface by default).
func Advertise(instance, service string, port int, txt []string, ifaceNames []string) (*Advertisement, error) {
	if len(ifaceNames) == 0 {
		return nil, errors.New("discovery: advertise: no interfaces given")
	}
	ifaces, err := Interfaces(ifaceNames)
	if err != nil {
		return nil, err
	}
	if instance == "" {
		h, _ := os.Hostname()
		instance = "MQTT broker on " + h
	}
	srv, err := zeroconf.Register(instance, service, "local.", port, txt, ifaces)
	if err != nil {
		return nil, fmt.Errorf("discovery: advertise %q on %s: %w", instance, names(ifaces), err)
	}
	return &Advertisement{srv: srv}, nil
}

// Stop withdraws the advertisement (a goodbye packet with TTL 0).
func (a *Advertisement) Stop() { a.srv.Shutdown() }
