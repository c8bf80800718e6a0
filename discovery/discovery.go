// Package discovery finds the MQTT broker on the LAN with mDNS/DNS-SD and
// advertises it from the master, behind a small interface so the mDNS
// library can be swapped.
//
// Browsing is done by MDNS (one-shot legacy-unicast DNS-SD queries, see its
// doc for why not zeroconf's browser); advertising by zeroconf.
//
// Discovery only proposes candidates. Nothing here trusts an answer: the
// daemon dials each candidate and keeps it only if the TLS handshake
// verifies the broker's certificate for the configured host name, so a
// spoofed advertisement can delay a connection, never redirect it.
//
//	b := &discovery.MDNS{IPVersion: discovery.IPv4}
//	svcs, err := b.Browse(ctx, "_secure-mqtt._tcp", 3*time.Second)
//	for _, c := range discovery.Candidates(svcs, "", "broker.local") { … dial c.Addr … }
package discovery

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// DefaultService is the DNS-SD type of an MQTT-over-TLS broker.
const DefaultService = "_secure-mqtt._tcp"

// EnrollService is the DNS-SD type a master advertises its EST enrollment
// server under, and `agent enroll` browses for without --server.
const EnrollService = "_est._tcp"

// Service is one advertised instance.
type Service struct {
	Instance string       `json:"instance"` // unescaped ("MQTT on hub", not "MQTT\ on\ hub")
	Host     string       `json:"host"`     // the SRV target, e.g. "hub.local."
	Port     int          `json:"port"`
	Addrs    []netip.Addr `json:"addresses"`
	TXT      []string     `json:"txt"`
}

// TXTValue returns the value of key=value in the TXT record, and whether
// the key is there.
func (s Service) TXTValue(key string) (string, bool) {
	for _, kv := range s.TXT {
		k, v, _ := strings.Cut(kv, "=")
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// Browser looks for instances of a service type. Browse returns what it
// found within the window (it may return early once answers stop coming);
// an empty result is not an error.
type Browser interface {
	Browse(ctx context.Context, service string, window time.Duration) ([]Service, error)
}

// maxAddrsPerInstance bounds the addresses tried for one instance.
const maxAddrsPerInstance = 4

// Candidate is one address to try.
type Candidate struct {
	Instance string
	Addr     netip.AddrPort
}

// Skipped is an advertisement left out before any dial, and why.
type Skipped struct {
	Instance string
	Reason   string
}

// Candidates orders what Browse found into addresses to dial: the preferred
// instance first (if any), then instances by name, each instance's IPv4
// addresses before IPv6, each list sorted, so the order is stable from one
// lookup to the next. An instance whose TXT record names a host other than
// host (key "host") is skipped, and so are addresses that are not usable
// unicast addresses.
func Candidates(svcs []Service, prefer, host string) ([]Candidate, []Skipped) {
	svcs = slices.Clone(svcs)
	slices.SortStableFunc(svcs, func(a, b Service) int {
		pa, pb := prefer != "" && a.Instance == prefer, prefer != "" && b.Instance == prefer
		if pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Instance, b.Instance)
	})
	var out []Candidate
	var skipped []Skipped
	seen := map[netip.AddrPort]bool{}
	for _, s := range svcs {
		if v, ok := s.TXTValue("host"); ok && !strings.EqualFold(strings.TrimSuffix(v, "."), strings.TrimSuffix(host, ".")) {
			skipped = append(skipped, Skipped{s.Instance, fmt.Sprintf("its TXT record names host %q, not %q", v, host)})
			continue
		}
		if s.Port <= 0 || s.Port > 65535 {
			skipped = append(skipped, Skipped{s.Instance, fmt.Sprintf("port %d is not a port", s.Port)})
			continue
		}
		addrs := slices.Clone(s.Addrs)
		slices.SortFunc(addrs, func(a, b netip.Addr) int {
			if a.Is4() != b.Is4() {
				if a.Is4() {
					return -1
				}
				return 1
			}
			return a.Compare(b)
		})
		n := 0
		for _, a := range addrs {
			if n == maxAddrsPerInstance {
				break // an answer listing many addresses cannot crowd out the rest
			}
			a = a.Unmap()
			if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || (a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "") {
				continue
			}
			ap := netip.AddrPortFrom(a, uint16(s.Port))
			if seen[ap] {
				continue
			}
			seen[ap] = true
			n++
			out = append(out, Candidate{Instance: s.Instance, Addr: ap})
		}
	}
	return out, skipped
}

// Unescape turns a DNS-SD instance label as the wire spells it ("MQTT\ on\
// hub", "a\.b", "caf\195\169") into its text.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n < 256 {
				b = append(b, byte(n))
				i += 3
				continue
			}
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
