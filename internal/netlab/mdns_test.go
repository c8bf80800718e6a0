package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// A just-large-enough mDNS client for the tests, standard library only: it
// sends one-shot ("legacy unicast", RFC 6762 §6.7) queries from an
// ephemeral port to 224.0.0.251:5353, which responders answer by unicast
// to that port, so no socket needs port 5353 or a group membership.

const (
	typeA    = 1
	typePTR  = 12
	typeTXT  = 16
	typeAAAA = 28
	typeSRV  = 33
)

var mdnsGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

// browseMDNS looks up service (e.g. "_secure-mqtt._tcp.local") and prints
// what it learns, one record a line, exiting once one instance is complete
// (PTR, SRV, TXT and the target's A record).
func browseMDNS(service string) error {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return err
	}
	defer conn.Close()
	svc := splitName(service)
	deadline := time.Now().Add(10 * time.Second)
	var id uint16
	seen := map[string]bool{}
	var records []dnsRR
	for time.Now().Before(deadline) {
		// Ask for what is still missing, PTR first.
		inst, srv, txt, addr := complete(records, svc)
		id++
		q := [][]string{svc}
		qt := []uint16{typePTR}
		if inst != nil {
			if srv == nil {
				q, qt = append(q, inst), append(qt, typeSRV)
			}
			if txt == nil {
				q, qt = append(q, inst), append(qt, typeTXT)
			}
			if srv != nil && addr == nil {
				q, qt = append(q, srv.target), append(qt, typeA)
			}
		}
		for i := range q {
			if _, err := conn.WriteToUDP(buildQuery(id, q[i], qt[i]), mdnsGroup); err != nil {
				return fmt.Errorf("send query: %w", err)
			}
		}
		buf := make([]byte, 9000)
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return err
			}
			rrs, err := parseResponse(buf[:n])
			if err != nil {
				fmt.Printf("bad response from %v: %v\n", from, err)
				continue
			}
			if line := "FROM " + from.String(); !seen[line] {
				seen[line] = true
				fmt.Println(line)
			}
			for _, rr := range rrs {
				if line := rr.String(); !seen[line] {
					seen[line] = true
					fmt.Println(line)
					records = append(records, rr)
				}
			}
		}
		if inst, srv, txt, addr := complete(records, svc); inst != nil && srv != nil && txt != nil && addr != nil {
			return nil
		}
	}
	return errors.New("no complete answer in 10s")
}

// complete picks, from records, the first instance of svc and its SRV, TXT
// and target address records; nil where not yet known.
func complete(records []dnsRR, svc []string) (inst []string, srv, txt, addr *dnsRR) {
	for i := range records {
		if r := &records[i]; r.typ == typePTR && sameName(r.name, svc) {
			inst = r.target
			break
		}
	}
	if inst == nil {
		return nil, nil, nil, nil
	}
	for i := range records {
		r := &records[i]
		switch {
		case r.typ == typeSRV && sameName(r.name, inst):
			srv = r
		case r.typ == typeTXT && sameName(r.name, inst):
			txt = r
		}
	}
	if srv != nil {
		for i := range records {
			if r := &records[i]; r.typ == typeA && sameName(r.name, srv.target) {
				addr = r
			}
		}
	}
	return inst, srv, txt, addr
}

func splitName(s string) []string { return strings.Split(strings.TrimSuffix(s, "."), ".") }

func sameName(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

func joinName(labels []string) string { return strings.Join(labels, ".") + "." }

// buildQuery returns a DNS query for one name (as labels, which may hold
// dots or spaces) and type, class IN.
func buildQuery(id uint16, name []string, qtype uint16) []byte {
	msg := binary.BigEndian.AppendUint16(nil, id)
	msg = append(msg, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) // flags; 1 question
	for _, l := range name {
		msg = append(msg, byte(len(l)))
		msg = append(msg, l...)
	}
	msg = append(msg, 0)
	msg = binary.BigEndian.AppendUint16(msg, qtype)
	return binary.BigEndian.AppendUint16(msg, 1)
}

type dnsRR struct {
	name   []string
	typ    uint16
	target []string // PTR target, SRV target
	port   uint16   // SRV
	txt    []string // TXT strings
	addr   netip.Addr
}

func (r dnsRR) String() string {
	n := joinName(r.name)
	switch r.typ {
	case typePTR:
		return fmt.Sprintf("PTR %s -> %s", n, joinName(r.target))
	case typeSRV:
		return fmt.Sprintf("SRV %s port=%d target=%s", n, r.port, joinName(r.target))
	case typeTXT:
		return fmt.Sprintf("TXT %s %s", n, strings.Join(r.txt, " "))
	case typeA, typeAAAA:
		return fmt.Sprintf("A %s %s", n, r.addr)
	}
	return fmt.Sprintf("type%d %s", r.typ, n)
}

var errShort = errors.New("message truncated")

// parseResponse returns the answer, authority and additional records of a
// DNS response.
func parseResponse(msg []byte) ([]dnsRR, error) {
	if len(msg) < 12 {
		return nil, errShort
	}
	if msg[2]&0x80 == 0 {
		return nil, errors.New("not a response")
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rrCount := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	off := 12
	for range qd {
		_, next, err := readName(msg, off)
		if err != nil {
			return nil, err
		}
		off = next + 4
	}
	var rrs []dnsRR
	for range rrCount {
		name, next, err := readName(msg, off)
		if err != nil {
			return nil, err
		}
		if next+10 > len(msg) {
			return nil, errShort
		}
		r := dnsRR{name: name, typ: binary.BigEndian.Uint16(msg[next:])}
		rdlen := int(binary.BigEndian.Uint16(msg[next+8:]))
		start := next + 10
		end := start + rdlen
		if end > len(msg) {
			return nil, errShort
		}
		data := msg[start:end]
		switch r.typ {
		case typePTR:
			if r.target, _, err = readName(msg, start); err != nil {
				return nil, err
			}
		case typeSRV:
			if rdlen < 7 {
				return nil, errShort
			}
			r.port = binary.BigEndian.Uint16(data[4:])
			if r.target, _, err = readName(msg, start+6); err != nil {
				return nil, err
			}
		case typeTXT:
			for i := 0; i < len(data); {
				n := int(data[i])
				if i+1+n > len(data) {
					return nil, errShort
				}
				r.txt = append(r.txt, string(data[i+1:i+1+n]))
				i += 1 + n
			}
		case typeA, typeAAAA:
			var ok bool
			if r.addr, ok = netip.AddrFromSlice(data); !ok {
				return nil, fmt.Errorf("bad address length %d", len(data))
			}
		}
		rrs = append(rrs, r)
		off = end
	}
	return rrs, nil
}

// readName reads a possibly compressed name at off; next is the offset after
// it in place (after the first pointer, if any).
func readName(msg []byte, off int) (labels []string, next int, err error) {
	next = -1
	for jumps := 0; ; {
		if off >= len(msg) {
			return nil, 0, errShort
		}
		n := int(msg[off])
		switch {
		case n == 0:
			if next < 0 {
				next = off + 1
			}
			return labels, next, nil
		case n&0xC0 == 0xC0:
			if off+1 >= len(msg) {
				return nil, 0, errShort
			}
			if next < 0 {
				next = off + 2
			}
			if jumps++; jumps > 32 {
				return nil, 0, errors.New("name compression loop")
			}
			off = int(binary.BigEndian.Uint16(msg[off:]) & 0x3FFF)
		case n&0xC0 != 0:
			return nil, 0, fmt.Errorf("bad label length byte %#x", n)
		default:
			if off+1+n > len(msg) {
				return nil, 0, errShort
			}
			labels = append(labels, string(msg[off+1:off+1+n]))
			off += 1 + n
		}
	}
}
