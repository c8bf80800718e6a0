package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// MDNS is the agent's Browser: one-shot DNS-SD queries sent from an
// ephemeral port, which RFC 6762 §6.7 ("legacy unicast") has responders
// answer directly, with every record of the answer and none of the
// multicast suppression. It needs no multicast group membership, keeps
// every record it hears across packets, and asks once more for what an
// answer left out (an SRV, a TXT or an address).
//
// It replaced zeroconf v1.0.0's browser, which forgets address records from
// one packet to the next and stops querying after the first instance: with
// two services on one Avahi host it regularly reported only one of them.
// zeroconf still does the advertising (Advertise).
type MDNS struct {
	Interfaces []string // names; empty: every up, multicast-capable, non-loopback interface
	IPVersion  string   // IPv4, IPv6 or Both ("" is Both)
	Logger     *slog.Logger
	// Settle is how long to keep listening after the first answer (0:
	// 500 ms; responders delay shared answers by up to 120 ms).
	Settle time.Duration
}

// qclass is IN with the "unicast response" bit (RFC 6762 §5.4): Avahi answers
// a query from an ephemeral port directly anyway; zeroconf's responder (our
// own master) does so only when this bit asks for it.
const qclass = dns.ClassINET | 1<<15

var (
	mdnsV4 = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	mdnsV6 = net.ParseIP("ff02::fb")
)

// Browse implements Browser.
func (m *MDNS) Browse(ctx context.Context, service string, window time.Duration) ([]Service, error) {
	ifaces, err := Interfaces(m.Interfaces)
	if err != nil {
		return nil, err
	}
	settle := m.Settle
	if settle == 0 {
		settle = 500 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()

	var socks []*sock
	var errs []error
	if m.IPVersion != IPv6 {
		if s, err := openV4(ifaces); err != nil {
			errs = append(errs, err)
		} else {
			socks = append(socks, s)
		}
	}
	if m.IPVersion != IPv4 {
		if s, err := openV6(ifaces); err != nil {
			errs = append(errs, err)
		} else {
			socks = append(socks, s)
		}
	}
	if len(socks) == 0 {
		return nil, fmt.Errorf("discovery: mDNS on %s: %w", names(ifaces), errors.Join(errs...))
	}
	if len(errs) > 0 && m.Logger != nil {
		m.Logger.Debug("mDNS: one IP version unavailable", "err", errors.Join(errs...))
	}
	defer func() {
		for _, s := range socks {
			s.conn.Close()
		}
	}()
	// Closing the sockets ends the readers.
	go func() { <-ctx.Done(); closeAll(socks) }()

	svcName := dns.Fqdn(service + ".local")
	// Records are kept per responder, so one host's answers (a spoofer's
	// TXT, SRV or goodbye) can never change what another host said.
	bySrc := map[netip.Addr]*records{}
	var srcs []netip.Addr
	all := func() []Service {
		var out []Service
		for _, a := range srcs {
			out = append(out, bySrc[a].services()...)
		}
		return out
	}
	sent := map[uint16]bool{}
	msgs := make(chan answer, 64)
	for _, s := range socks {
		go s.read(msgs)
	}
	ask := func(qs ...dns.Question) {
		q := new(dns.Msg)
		q.Id = dns.Id()
		sent[q.Id] = true
		q.Question = qs
		b, err := q.Pack()
		if err != nil {
			return
		}
		for _, s := range socks {
			s.send(b)
		}
	}
	ask(dns.Question{Name: svcName, Qtype: dns.TypePTR, Qclass: qclass})

	var settleC, followC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return all(), nil
		case <-settleC:
			return all(), nil
		case <-followC:
			followC = nil
			var qs []dns.Question
			for _, a := range srcs {
				qs = append(qs, bySrc[a].missing()...)
			}
			if len(qs) > 0 {
				ask(qs...)
			}
		case a := <-msgs:
			if !sent[a.msg.Id] || !a.src.IsValid() {
				continue // not an answer to our queries
			}
			c := bySrc[a.src]
			if c == nil {
				c = newRecords(svcName)
				bySrc[a.src] = c
				srcs = append(srcs, a.src)
			}
			if !c.add(a.msg, a.zone) || settleC != nil {
				continue
			}
			t := time.NewTimer(settle)
			defer t.Stop()
			settleC = t.C
			f := time.NewTimer(settle / 3)
			defer f.Stop()
			followC = f.C
		}
	}
}

// sock is one UDP socket sending queries out of each chosen interface.
type sock struct {
	conn   net.PacketConn
	ifaces []net.Interface
	setIf  func(*net.Interface) error
	dst    func(*net.Interface) net.Addr
}

func closeAll(s []*sock) {
	for _, x := range s {
		x.conn.Close()
	}
}

func openV4(ifaces []net.Interface) (*sock, error) {
	c, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	p := ipv4.NewPacketConn(c)
	_ = p.SetMulticastTTL(255)
	_ = p.SetMulticastLoopback(true) // a broker advertised on this very board
	return &sock{conn: c, ifaces: ifaces, setIf: p.SetMulticastInterface,
		dst: func(*net.Interface) net.Addr { return mdnsV4 }}, nil
}

func openV6(ifaces []net.Interface) (*sock, error) {
	c, err := net.ListenPacket("udp6", "[::]:0")
	if err != nil {
		return nil, err
	}
	p := ipv6.NewPacketConn(c)
	_ = p.SetMulticastHopLimit(255)
	_ = p.SetMulticastLoopback(true)
	return &sock{conn: c, ifaces: ifaces, setIf: p.SetMulticastInterface,
		dst: func(i *net.Interface) net.Addr { return &net.UDPAddr{IP: mdnsV6, Port: 5353, Zone: i.Name} }}, nil
}

func (s *sock) send(b []byte) {
	for i := range s.ifaces {
		ifi := &s.ifaces[i]
		if s.setIf(ifi) != nil {
			continue // e.g. no IPv6 on this interface
		}
		_, _ = s.conn.WriteTo(b, s.dst(ifi))
	}
}

// answer is one response and the zone (interface) it came in on, which an
// IPv6 link-local address in it needs to be dialled.
type answer struct {
	msg  *dns.Msg
	src  netip.Addr
	zone string
}

func (s *sock) read(out chan<- answer) {
	buf := make([]byte, 9000)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m := new(dns.Msg)
		if m.Unpack(buf[:n]) != nil || !m.Response {
			continue // malformed or not an answer: ignored
		}
		var src netip.Addr
		zone := ""
		if u, ok := from.(*net.UDPAddr); ok {
			src, _ = netip.AddrFromSlice(u.IP)
			src, zone = src.Unmap(), u.Zone
		}
		select {
		case out <- answer{m, src, zone}:
		default: // the browse is over or flooded
		}
	}
}

// records keeps every record heard, across packets.
type records struct {
	svc   string
	order []string // instance names in the order first heard
	ptr   map[string]bool
	srv   map[string]*dns.SRV
	txt   map[string][]string
	addrs map[string][]netip.Addr
}

func newRecords(svc string) *records {
	return &records{svc: svc, ptr: map[string]bool{}, srv: map[string]*dns.SRV{}, txt: map[string][]string{}, addrs: map[string][]netip.Addr{}}
}

// add takes the records of one message, which arrived on zone (an IPv6
// interface name, or ""), and reports whether it named an instance of the
// service.
func (r *records) add(m *dns.Msg, zone string) bool {
	named := false
	for _, rr := range append(append(append([]dns.RR{}, m.Answer...), m.Ns...), m.Extra...) {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		switch v := rr.(type) {
		case *dns.PTR:
			if name == strings.ToLower(r.svc) && strings.HasSuffix(strings.ToLower(v.Ptr), "."+strings.ToLower(r.svc)) {
				inst := v.Ptr
				if h.Ttl == 0 { // a goodbye
					delete(r.ptr, strings.ToLower(inst))
					continue
				}
				if !r.ptr[strings.ToLower(inst)] {
					r.ptr[strings.ToLower(inst)] = true
					r.order = append(r.order, inst)
				}
				named = true
			}
		case *dns.SRV:
			r.srv[name] = v
		case *dns.TXT:
			r.txt[name] = v.Txt
		case *dns.A:
			if a, ok := netip.AddrFromSlice(v.A.To4()); ok && !contains(r.addrs[name], a) {
				r.addrs[name] = append(r.addrs[name], a)
			}
		case *dns.AAAA:
			a, ok := netip.AddrFromSlice(v.AAAA)
			if ok && a.IsLinkLocalUnicast() {
				if zone == "" {
					continue // unusable without its interface
				}
				a = a.WithZone(zone)
			}
			if ok && !contains(r.addrs[name], a) {
				r.addrs[name] = append(r.addrs[name], a)
			}
		}
	}
	return named
}

func contains(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// missing returns the questions that would complete what was heard.
func (r *records) missing() []dns.Question {
	var qs []dns.Question
	for _, inst := range r.order {
		k := strings.ToLower(inst)
		if !r.ptr[k] {
			continue
		}
		srv, ok := r.srv[k]
		if !ok {
			qs = append(qs, dns.Question{Name: inst, Qtype: dns.TypeSRV, Qclass: qclass})
		}
		if _, ok := r.txt[k]; !ok {
			qs = append(qs, dns.Question{Name: inst, Qtype: dns.TypeTXT, Qclass: qclass})
		}
		if ok && len(r.addrs[strings.ToLower(srv.Target)]) == 0 {
			qs = append(qs, dns.Question{Name: srv.Target, Qtype: dns.TypeA, Qclass: qclass},
				dns.Question{Name: srv.Target, Qtype: dns.TypeAAAA, Qclass: qclass})
		}
	}
	return qs
}

// services returns the instances with an SRV record, in the order heard.
func (r *records) services() []Service {
	var out []Service
	for _, inst := range r.order {
		k := strings.ToLower(inst)
		srv, ok := r.srv[k]
		if !r.ptr[k] || !ok {
			continue
		}
		label := inst[:len(inst)-len(r.svc)-1]
		out = append(out, Service{
			Instance: Unescape(label),
			Host:     srv.Target,
			Port:     int(srv.Port),
			Addrs:    r.addrs[strings.ToLower(srv.Target)],
			TXT:      r.txt[k],
		})
	}
	return out
}
