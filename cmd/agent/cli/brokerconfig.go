package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/edgeagent/agent/agent/brokerconf"
	"github.com/edgeagent/agent/pki"
)

// brokerConfigCmd is `agent broker-config`: Mosquitto's listener, ACL and
// certificate for the fleet, generated so nobody hand-edits them.
func brokerConfigCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent broker-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o brokerconf.Options
	var sans listFlag
	key := fs.String("key", "ec", "key type of a newly issued broker certificate: ec, rsa2048, rsa3072 or rsa4096")
	fs.StringVar(&o.CADir, "ca-dir", "", "the CA directory (agent ca init); required")
	fs.StringVar(&o.Host, "host", "", "the broker's DNS name: what every device has as broker.host; required")
	fs.Var(&sans, "san", "more DNS names or IP addresses for the broker certificate (repeatable, comma-separated)")
	fs.StringVar(&o.Out, "out", brokerconf.DefaultOut, "where agent.conf and agent.acl go (Debian's include_dir)")
	fs.StringVar(&o.CertDir, "cert-dir", brokerconf.DefaultCertDir, "where broker.crt, broker.key, ca.crt and ca.crl go")
	fs.IntVar(&o.Port, "port", brokerconf.DefaultPort, "the mutual-TLS listener's port")
	fs.StringVar(&o.Bind, "bind", "", "an IP address to bind the TLS listener to (default: every address)")
	fs.StringVar(&o.Prefix, "prefix", brokerconf.DefaultPrefix, "the fleet's topic prefix (mqtt.prefix)")
	fs.StringVar(&o.HAPrefix, "ha-prefix", brokerconf.DefaultHAPrefix, "Home Assistant's discovery prefix")
	fs.StringVar(&o.Master, "master", brokerconf.DefaultMaster, "the master's certificate CN: read-write on <prefix>/#")
	fs.BoolVar(&o.LocalPlain, "local-plain", false, "add a plain, anonymous, read-only listener on 127.0.0.1")
	fs.IntVar(&o.LocalPort, "local-port", brokerconf.DefaultLocalPort, "its port")
	fs.IntVar(&o.Days, "days", 365, "validity of a newly issued broker certificate")
	fs.BoolVar(&o.Reissue, "reissue", false, "issue a new broker certificate even if one is in place")
	fs.StringVar(&o.BrokerUser, "broker-user", brokerconf.DefaultBrokerUser, "the user Mosquitto runs as (it must read the key)")
	if err := fs.Parse(args); err != nil {
		return ExitRefused
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agent broker-config: unexpected argument %q\n", fs.Arg(0))
		return ExitRefused
	}
	kt, err := pki.ParseKeyType(*key)
	if err != nil {
		fmt.Fprintf(stderr, "agent broker-config: %v\n", err)
		return ExitRefused
	}
	o.Key, o.SANs, o.Now = kt, sans, time.Now()
	res, err := brokerconf.Write(o)
	if err != nil {
		fmt.Fprintf(stderr, "agent broker-config: %s\n", strings.TrimPrefix(err.Error(), "broker-config: ")) // the package names itself
		if errors.Is(err, brokerconf.ErrInvalid) || errors.Is(err, brokerconf.ErrReissue) {
			return ExitRefused
		}
		return ExitFailure
	}
	fmt.Fprint(stdout, res.Report())
	return ExitOK
}
