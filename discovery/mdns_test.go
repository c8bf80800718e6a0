package discovery

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

const svcName = "_secure-mqtt._tcp.local."

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

func resp(rrs ...dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.Response = true
	m.Answer = rrs
	return m
}

// TestRecordsAcrossPackets: an answer split over packets (PTR+SRV in one,
// the address in another, as Avahi sends when it has just multicast the
// address) still yields the instance, and missing() asks for what is absent.
func TestRecordsAcrossPackets(t *testing.T) {
	r := newRecords(svcName)
	inst := `MQTT\ on\ hub.` + svcName
	if !r.add(resp(&dns.PTR{Hdr: hdr(svcName, dns.TypePTR, 120), Ptr: inst}), "") {
		t.Fatal("PTR not recognised")
	}
	if got := r.missing(); len(got) != 2 || got[0].Qtype != dns.TypeSRV || got[1].Qtype != dns.TypeTXT {
		t.Errorf("missing = %v, want SRV and TXT", got)
	}
	r.add(resp(&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, 120), Port: 8883, Target: "hub.local."},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, 120), Txt: []string{"host=broker.test"}}), "")
	if got := r.missing(); len(got) != 2 || got[0].Qtype != dns.TypeA || got[1].Qtype != dns.TypeAAAA {
		t.Errorf("missing = %v, want A and AAAA of hub.local.", got)
	}
	r.add(resp(&dns.A{Hdr: hdr("hub.local.", dns.TypeA, 120), A: net.ParseIP("198.18.0.10")},
		&dns.AAAA{Hdr: hdr("hub.local.", dns.TypeAAAA, 120), AAAA: net.ParseIP("fe80::1")},
		&dns.AAAA{Hdr: hdr("hub.local.", dns.TypeAAAA, 120), AAAA: net.ParseIP("2001:db8::1")}), "eth0")
	got := r.services()
	want := []netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("2001:db8::1")}
	if len(got) != 1 || got[0].Instance != "MQTT on hub" || got[0].Port != 8883 || !slices.Equal(got[0].Addrs, want) || got[0].TXT[0] != "host=broker.test" {
		t.Errorf("services = %+v", got)
	}
	if m := r.missing(); len(m) != 0 {
		t.Errorf("missing = %v after a complete answer", m)
	}
	// A goodbye (TTL 0) withdraws the instance.
	r.add(resp(&dns.PTR{Hdr: hdr(svcName, dns.TypePTR, 0), Ptr: inst}), "")
	if s := r.services(); len(s) != 0 {
		t.Errorf("services after goodbye = %+v", s)
	}
}

func TestRecordsIgnoreOtherServices(t *testing.T) {
	r := newRecords(svcName)
	other := "printer._ipp._tcp.local."
	if r.add(resp(&dns.PTR{Hdr: hdr("_ipp._tcp.local.", dns.TypePTR, 120), Ptr: other}), "") {
		t.Error("a PTR of another service counted")
	}
	// A PTR under our service name pointing outside it is ignored too.
	if r.add(resp(&dns.PTR{Hdr: hdr(svcName, dns.TypePTR, 120), Ptr: "evil.example."}), "") {
		t.Error("a PTR to a name outside the service counted")
	}
	r.add(resp(&dns.AAAA{Hdr: hdr("x.local.", dns.TypeAAAA, 120), AAAA: net.ParseIP("fe80::2")}), "")
	if len(r.addrs["x.local."]) != 0 {
		t.Error("a link-local address without a zone was kept")
	}
}

// FuzzRecords: any packet a LAN can send is parsed or ignored, never a
// panic, and what comes out is usable.
func FuzzRecords(f *testing.F) {
	m := resp(&dns.PTR{Hdr: hdr(svcName, dns.TypePTR, 120), Ptr: "a." + svcName},
		&dns.SRV{Hdr: hdr("a."+svcName, dns.TypeSRV, 120), Port: 8883, Target: "h.local."},
		&dns.A{Hdr: hdr("h.local.", dns.TypeA, 120), A: net.ParseIP("192.0.2.1")})
	b, _ := m.Pack()
	f.Add(b, "eth0")
	f.Fuzz(func(t *testing.T, pkt []byte, zone string) {
		msg := new(dns.Msg)
		if msg.Unpack(pkt) != nil {
			return
		}
		r := newRecords(svcName)
		r.add(msg, zone)
		_ = r.missing()
		for _, s := range r.services() {
			if s.Port < 0 || s.Port > 65535 {
				t.Fatalf("port %d", s.Port)
			}
			Candidates([]Service{s}, "", "broker.test")
		}
	})
}
