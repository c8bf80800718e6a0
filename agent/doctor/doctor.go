// Package doctor checks, layer by layer, whether this board can talk to its
// broker, the way a senior engineer would on a serial console: the config,
// the credentials, the broker's name, TCP, the TLS handshake, MQTT CONNECT
// and a publish under the device's own topic. It stops at the first broken
// layer (the checks that depend on it are reported as skipped) and says for
// each warning or failure what to do.
//
// The checks never touch the daemon's state: the MQTT client id is
// "<id>-doctor" with a clean start, so the daemon's session is not taken
// over, and nothing is written to disk.
//
//	cfg, err := config.Load(path)
//	if err != nil {
//		results = doctor.ConfigFailed(err) // exit 2
//	} else {
//		results = doctor.Run(ctx, cfg, doctor.Options{})
//	}
//	if doctor.Failed(results) { /* exit 1 */ }
//
// Time, the resolver and the hosts file are Options, so tests build each
// fault for real without touching the machine's clock or /etc/hosts.
package doctor

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/tlsclient"
)

// Statuses of a Result.
const (
	Pass = "pass"
	Warn = "warn" // works, but something needs attention
	Fail = "fail" // this layer is broken; the checks depending on it are skipped
	Skip = "skip" // not run because an earlier check failed
)

// The checks, in the order they run.
const (
	CheckConfig      = "config"
	CheckCredentials = "credentials"
	CheckResolve     = "resolve"
	CheckTCP         = "tcp"
	CheckTLS         = "tls"
	CheckMQTT        = "mqtt"
	CheckPublish     = "publish"
	CheckSubscribe   = "subscribe"
	CheckHygiene     = "broker-hygiene"
	CheckService     = "service"
)

// Checks lists the check names in order.
var Checks = []string{CheckConfig, CheckCredentials, CheckResolve, CheckTCP, CheckTLS, CheckMQTT, CheckPublish, CheckSubscribe, CheckHygiene, CheckService}

// Result is the outcome of one check.
type Result struct {
	Check  string `json:"check"`
	Status string `json:"status"` // Pass, Warn, Fail or Skip
	Detail string `json:"detail"` // one line: what was found
	Fix    string `json:"fix"`    // for Warn and Fail: what to do
}

// Options tune Run; the zero value checks this board as it is.
type Options struct {
	// Now is the clock the certificates are judged by; nil is time.Now.
	Now func() time.Time
	// LookupHost resolves a host name; nil is net.DefaultResolver.LookupHost.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// HostsFile is read instead of broker.hosts_file when set.
	HostsFile string
	// Timeout bounds each network step (lookup, connect, handshake,
	// CONNECT, publish); 0 is DefaultTimeout.
	Timeout time.Duration
	// PlainPort is where a plain MQTT listener would be (0: 1883).
	PlainPort int
	// Browser finds the broker when broker.discover is set; nil is mDNS on
	// broker.interfaces.
	Browser discovery.Browser
	// ProcRoot is where processes are listed ("" is /proc).
	ProcRoot string
	// ServiceUser is the user the daemon runs as ("" is "agent", the
	// packaged unit's); the credential files must be readable by it.
	ServiceUser string
}

// DefaultTimeout bounds each network step.
const DefaultTimeout = 5 * time.Second

// ExpiryWarning is how close to its end the client certificate makes the
// credentials check warn: renewal normally happens at two thirds of the
// lifetime, so a certificate this close to expiry means renewal is failing.
const ExpiryWarning = 14 * 24 * time.Hour

// Failed reports whether any result is a failure.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// ConfigFailed is the report when the config cannot be read: the config
// check fails with err's sentence and every other check is skipped.
func ConfigFailed(err error) []Result {
	msg := err.Error()
	msg = strings.TrimSuffix(strings.TrimPrefix(msg, config.ErrInvalid.Error()+": "), ": "+config.ErrInvalid.Error())
	rs := []Result{{Check: CheckConfig, Status: Fail, Detail: msg,
		Fix: "correct the file or key named (the keys are in docs/config.md), or pass --config FILE"}}
	return append(rs, skipRest(CheckConfig, "the config cannot be read")...)
}

// skipRest returns Skip results for the checks after check.
func skipRest(check, why string) []Result {
	var rs []Result
	after := false
	for _, c := range Checks {
		if after {
			rs = append(rs, Result{Check: c, Status: Skip, Detail: "not run: " + why})
		}
		if c == check {
			after = true
		}
	}
	return rs
}

// runner carries what one check hands to the next.
type runner struct {
	cfg   *config.Config
	o     Options
	creds *tlsclient.Credentials
	id    string   // the MQTT user: id, or the certificate's CN
	addr  string   // host:port to dial; "" when there is none
	more  []string // further discovered candidates, tried in turn by the TLS check
	conn  net.Conn
	got   chan *paho.Publish // what the doctor's MQTT client receives
}

// Run runs the checks on cfg in order and returns one Result per check.
// After a failure the remaining checks are Skip. ctx bounds the whole run.
func Run(ctx context.Context, cfg *config.Config, o Options) []Result {
	if cfg == nil {
		return ConfigFailed(errors.New("no config"))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LookupHost == nil {
		o.LookupHost = net.DefaultResolver.LookupHost
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PlainPort == 0 {
		o.PlainPort = 1883
	}
	if o.ServiceUser == "" {
		o.ServiceUser = "agent"
	}
	r := &runner{cfg: cfg, o: o, got: make(chan *paho.Publish, 64)}
	defer func() {
		if r.conn != nil {
			r.conn.Close()
		}
	}()

	rs := []Result{r.config()}
	steps := []struct {
		name string
		fn   func(context.Context) Result
	}{
		{CheckCredentials, r.credentials},
		{CheckResolve, r.resolve},
		{CheckTCP, r.tcp},
		{CheckTLS, r.tls},
	}
	for _, s := range steps {
		res := s.fn(ctx)
		rs = append(rs, res)
		if res.Status == Fail {
			return append(rs, skipRest(s.name, s.name+" failed")...)
		}
		if s.name == CheckResolve && r.addr == "" {
			return append(rs, skipRest(s.name, "no broker address to dial")...)
		}
	}
	// MQTT: under TLS 1.3 the broker judges our certificate after the
	// handshake, so its refusal arrives as an alert on the first read (the
	// CONNACK); that is the TLS layer's failure, not MQTT's.
	cli, mq, tlsErr := r.mqtt(ctx)
	if tlsErr != nil {
		rs[len(rs)-1] = r.tlsFailed(tlsErr)
		return append(rs, skipRest(CheckTLS, CheckTLS+" failed")...)
	}
	rs = append(rs, mq)
	if mq.Status == Fail {
		return append(rs, skipRest(CheckMQTT, CheckMQTT+" failed")...)
	}
	pub := r.publish(ctx, cli)
	rs = append(rs, pub)
	if pub.Status == Fail {
		_ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
		return append(rs, skipRest(CheckPublish, CheckPublish+" failed")...)
	}
	sub := r.subscribe(ctx, cli, r.got)
	_ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	rs = append(rs, sub)
	if sub.Status == Fail {
		return append(rs, skipRest(CheckSubscribe, CheckSubscribe+" failed")...)
	}
	rs = append(rs, r.hygiene(ctx), r.service(ctx))
	return rs
}

func (r *runner) config() Result {
	c := r.cfg
	path := c.Path
	if path == "" {
		path = "<config>"
	}
	d := path + ": role " + c.Role + ", broker " + c.Broker.Host + ":" + strconv.Itoa(c.Broker.Port)
	switch {
	case c.Broker.Address != "":
		d += " at " + c.Broker.Address
	case c.Broker.Discover:
		d += " (discovered)"
	}
	return Result{Check: CheckConfig, Status: Pass, Detail: d}
}

// split turns a sentence "what happened: what to do." into detail and fix.
func split(s string) (detail, fix string) {
	s = strings.TrimSpace(s)
	i := strings.Index(s, ": ")
	if i < 0 {
		return s, "see the detail"
	}
	return s[:i], strings.TrimSuffix(s[i+2:], ".")
}

func fail(check, detail, fix string) Result {
	return Result{Check: check, Status: Fail, Detail: detail, Fix: fix}
}
