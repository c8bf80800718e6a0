package discovery

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/grandcat/zeroconf"
)

// IP versions to browse on.
const (
	IPv4 = "4"
	IPv6 = "6"
	Both = "both"
)

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
