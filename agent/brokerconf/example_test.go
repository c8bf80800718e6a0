package brokerconf_test

import (
	"fmt"
	"strings"

	"github.com/edgeagent/agent/agent/brokerconf"
)

// Render is pure: the ACL for a fleet under prefix "farm" whose master's
// certificate is "hub".
func ExampleRender() {
	f, err := brokerconf.Render(brokerconf.Options{CADir: "/var/lib/agent/ca", Host: "hub.lan", Prefix: "farm", Master: "hub"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for line := range strings.SplitSeq(string(f.ACL), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			fmt.Println(line)
		}
	}
	// Output:
	// pattern write farm/%u/#
	// pattern read farm/%u/cmd
	// pattern readwrite homeassistant/+/%u/#
	// user hub
	// topic readwrite farm/#
}
