package hostsfile_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/edgeagent/agent/hostsfile"
)

// Discovery found the broker; the configured name is pinned to it. A line
// someone wrote by hand is kept and reported.
func ExampleUpdate() {
	dir, err := os.MkdirTemp("", "hostsfile-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "hosts") // /etc/hosts on a board
	os.WriteFile(path, []byte("127.0.0.1\tlocalhost\n10.0.0.99\tbroker.test\n"), 0o644)

	found := netip.MustParseAddr("192.0.2.10") // from the LAN
	pin := hostsfile.Pin{Name: "broker.test", Addrs: []netip.Addr{found}}
	changed, conflicts, err := hostsfile.Update(path, []hostsfile.Pin{pin})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("changed:", changed)
	for _, c := range conflicts {
		fmt.Printf("line %d also maps the broker: %s\n", c.Line, c.Text)
	}
	data, _ := os.ReadFile(path)
	fmt.Print(string(data))

	changed, _, _ = hostsfile.Update(path, []hostsfile.Pin{pin})
	fmt.Println("changed again:", changed)
	// Output:
	// changed: true
	// line 2 also maps the broker: 10.0.0.99	broker.test
	// 127.0.0.1	localhost
	// 10.0.0.99	broker.test
	// # BEGIN agent (managed by the edge agent; edits inside are replaced)
	// 192.0.2.10	broker.test
	// # END agent
	// changed again: false
}

// A name that is not a host name is refused, whatever its origin.
func ExampleRewrite_invalid() {
	pin := hostsfile.Pin{Name: "broker.test\n10.0.0.1 bank.example", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10")}}
	_, _, err := hostsfile.Rewrite([]byte("127.0.0.1 localhost\n"), []hostsfile.Pin{pin})
	fmt.Println(errors.Is(err, hostsfile.ErrInvalid))
	fmt.Println(err)
	// Output:
	// true
	// hostsfile: invalid pin: host name "broker.test\n10.0.0.1 bank.example": character '\n' not allowed (letters, digits, hyphen, dot)
}
