package doctor

import (
	"net"
	"testing"
)

// FuzzHostsAddrs: any hosts file yields only IP addresses, never a panic.
func FuzzHostsAddrs(f *testing.F) {
	f.Add([]byte("127.0.0.1 localhost\n# BEGIN agent\n192.0.2.7\tbroker.test # pinned\n::1 broker.test\n"), "broker.test")
	f.Add([]byte("not an ip broker.test\n\x00\xff\n192.0.2.1"), "broker.test")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		for _, a := range hostsAddrs(data, name) {
			if net.ParseIP(a) == nil {
				t.Fatalf("%q is not an IP", a)
			}
		}
	})
}
