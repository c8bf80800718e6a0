package doctor

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/agent/buffer"
	"github.com/edgeagent/agent/tlsclient"
)

// Round trips through the broker for the subscribe check; the median
// decides the Nagle warning.
const (
	roundTrips = 9
	// nagleStall: a round trip this slow on a healthy link is the 40 ms
	// delayed-ACK stall of a broker without set_tcp_nodelay.
	nagleStall = 30 * time.Millisecond
)

// subscribe checks that we can read our commands and times a command's
// round trip, with a second connection as the device that answers (the
// pattern of operator → broker → device → broker → operator):
//   - the second connection subscribes to our command topic and answers
//     each ping there; only a ping that reaches it proves the ACL
//     (Mosquitto grants a forbidden subscription and then delivers
//     nothing, so the SUBACK proves nothing);
//   - the first subscribes with No Local, so it sees only the answers, and
//     the median round trip shows a broker that holds small packets for a
//     delayed ACK (Nagle: set_tcp_nodelay false).
//
// The pings carry a Response Topic under our reply subtree, so a running
// agent answers them harmlessly.
func (r *runner) subscribe(ctx context.Context, cli *paho.Client, got chan *paho.Publish) Result {
	prefix := r.cfg.MQTT.Prefix
	cmd := prefix + "/" + r.id + "/cmd"
	sctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	sa, err := cli.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: cmd, QoS: 1, NoLocal: true}}})
	if err != nil {
		return fail(CheckSubscribe, fmt.Sprintf("SUBSCRIBE %s: %v", cmd, err), "see the broker log for this client")
	}
	if len(sa.Reasons) > 0 && sa.Reasons[0] >= 0x80 {
		return fail(CheckSubscribe, fmt.Sprintf("the broker refused the subscription to %s: SUBACK 0x%02x", cmd, sa.Reasons[0]),
			fmt.Sprintf("add `pattern read %s/%%u/cmd` to the broker's acl_file and reload Mosquitto (SIGHUP)", prefix))
	}
	props := &paho.PublishProperties{ResponseTopic: prefix + "/" + r.id + "/reply/doctor"}
	rtts, reached, err := r.echoRoundTrips(sctx, cli, got, cmd, props)
	switch {
	case !reached:
		return fail(CheckSubscribe, fmt.Sprintf("a ping published to %s did not reach a subscriber with our certificate within %v", cmd, r.o.Timeout),
			fmt.Sprintf("the broker's ACL does not let %q read its commands: add `pattern read %s/%%u/cmd` to its acl_file and reload Mosquitto (SIGHUP)", r.id, prefix))
	case err != nil:
		return fail(CheckSubscribe, fmt.Sprintf("command round trip on %s: %v", cmd, err), "see the broker log for this client")
	}
	slices.Sort(rtts)
	med := rtts[len(rtts)/2]
	d := fmt.Sprintf("commands on %s reach us; a command round trip through the broker takes %v (median of %d)", cmd, med.Round(10*time.Microsecond), len(rtts))
	if med >= nagleStall {
		return Result{Check: CheckSubscribe, Status: Warn, Detail: d,
			Fix: "round trips near 40 ms are the broker's Nagle/delayed-ACK stall: set `set_tcp_nodelay true` in mosquitto.conf (agent broker-config writes it) and restart Mosquitto"}
	}
	return Result{Check: CheckSubscribe, Status: Pass, Detail: d}
}

// await waits for payload on topic.
func await(ctx context.Context, got chan *paho.Publish, topic string, payload []byte) bool {
	for {
		select {
		case p := <-got:
			if p.Topic == topic && string(p.Payload) == string(payload) {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}

// echoRoundTrips opens the answering connection and times roundTrips
// pings; reached says whether the answering side received a ping at all.
func (r *runner) echoRoundTrips(ctx context.Context, cli *paho.Client, got chan *paho.Publish, cmd string, props *paho.PublishProperties) (rtts []time.Duration, reached bool, err error) {
	cfg := tlsclient.Config(tlsclient.NewHolder(r.creds), r.cfg.Broker.Host, r.cfg.TLS.LegacyCN)
	conn, err := tlsclient.Dial(ctx, r.addr, cfg)
	if err != nil {
		return nil, false, err
	}
	seen := make(chan struct{}, 1)
	var echo *paho.Client
	echo = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnClientError: func(error) {},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet.Payload
			if len(p) < 8 || p[len(p)-1] != '}' || string(p[:7]) != `{"id":"` || strings.Contains(string(p), `"echo"`) {
				return true, nil
			}
			select {
			case seen <- struct{}{}:
			default:
			}
			answer := append(p[:len(p)-1:len(p)-1], []byte(`,"echo":true}`)...)
			go func() {
				_, _ = echo.Publish(context.WithoutCancel(ctx), &paho.Publish{QoS: 1, Topic: cmd, Payload: answer, Properties: props})
			}()
			return true, nil
		}}})
	if _, err := echo.Connect(ctx, &paho.Connect{ClientID: r.id + "-doctor-echo", CleanStart: true, KeepAlive: 30}); err != nil {
		conn.Close()
		return nil, false, err
	}
	defer func() { _ = echo.Disconnect(&paho.Disconnect{}) }()
	if _, err := echo.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: cmd, QoS: 1, NoLocal: true}}}); err != nil {
		return nil, false, err
	}
	for i := range roundTrips {
		id := fmt.Sprintf("doctor-%s-%d", randHex(4), i)
		payload := fmt.Appendf(nil, `{"id":%q,"action":"ping"}`, id)
		answer := fmt.Appendf(nil, `{"id":%q,"action":"ping","echo":true}`, id)
		start := time.Now()
		if _, err := cli.Publish(ctx, &paho.Publish{QoS: 1, Topic: cmd, Payload: payload, Properties: props}); err != nil {
			return nil, reached, err
		}
		if !await(ctx, got, cmd, answer) {
			select {
			case <-seen:
				return nil, true, fmt.Errorf("no answer within %v", r.o.Timeout)
			default:
				return nil, reached, nil
			}
		}
		reached = true
		rtts = append(rtts, time.Since(start))
	}
	return rtts, true, nil
}

// hygiene looks at the broker from the device's side: a plain listener
// that lets anyone in, and TLS versions below 1.2.
func (r *runner) hygiene(ctx context.Context) Result {
	host, _, err := net.SplitHostPort(r.addr)
	if err != nil {
		return Result{Check: CheckHygiene, Status: Skip, Detail: "no broker address"}
	}
	var warns, fixes []string
	plain := net.JoinHostPort(host, strconv.Itoa(r.o.PlainPort))
	if anon, err := anonymousPlain(ctx, plain, r.o.Timeout); err == nil && anon {
		warns = append(warns, fmt.Sprintf("a plain MQTT listener on %s accepts anonymous clients: anyone on the network can read and write the fleet's topics", plain))
		fixes = append(fixes, "remove the plain listener or bind it to 127.0.0.1 (agent broker-config --local-plain does), and keep allow_anonymous false")
	}
	// A full, verified handshake offering TLS 1.0 and 1.1 only.
	dctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11,
		RootCAs: r.creds.Roots, ServerName: r.cfg.Broker.Host, Certificates: []tls.Certificate{r.creds.Cert}}}
	if c, err := d.DialContext(dctx, "tcp", r.addr); err == nil {
		c.Close()
		warns = append(warns, fmt.Sprintf("the broker at %s accepts TLS below 1.2", r.addr))
		fixes = append(fixes, "set `tls_version tlsv1.2` on its TLS listener")
	}
	if len(warns) == 0 {
		return Result{Check: CheckHygiene, Status: Pass, Detail: fmt.Sprintf("no anonymous plain listener on %s; TLS below 1.2 refused", plain)}
	}
	return Result{Check: CheckHygiene, Status: Warn, Detail: join(warns), Fix: join(fixes)}
}

func join(s []string) string {
	out := s[0]
	for _, x := range s[1:] {
		out += "; " + x
	}
	return out
}

// anonymousPlain reports whether a plain MQTT v5 CONNECT without user
// name or certificate is accepted at addr.
func anonymousPlain(ctx context.Context, addr string, timeout time.Duration) (bool, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nd net.Dialer
	conn, err := nd.DialContext(dctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	cli := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnClientError: func(error) {}})
	ca, err := cli.Connect(dctx, &paho.Connect{ClientID: "agent-doctor-" + randHex(4), CleanStart: true, KeepAlive: 10})
	if err != nil {
		conn.Close()
		return false, nil
	}
	_ = cli.Disconnect(&paho.Disconnect{})
	return ca.ReasonCode == 0, nil
}

// service checks what the daemon needs on this board: whether it runs (and
// under which systemd unit), the buffer directory writable, and how much
// waits in it.
func (r *runner) service(context.Context) Result {
	daemon := r.daemonState()
	res := r.bufferState()
	res.Detail = daemon + "; " + res.Detail
	if res.Status == Pass && strings.HasPrefix(daemon, "no agent daemon") && systemdHost(r.o.ProcRoot) {
		res.Status = Warn
		res.Fix = "start it: systemctl enable --now agent (or see journalctl -u agent for why it stopped)"
	}
	return res
}

// systemdHost reports whether the board runs systemd (sd_booted(3)).
func systemdHost(procRoot string) bool {
	if procRoot != "/proc" && procRoot != "" {
		return false // a test's fake /proc: no systemd around it
	}
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// daemonState finds `agent run` processes in /proc and the systemd unit of
// the first (from its cgroup).
func (r *runner) daemonState() string {
	root := r.o.ProcRoot
	if root == "" {
		root = "/proc"
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return "processes cannot be listed (" + err.Error() + ")"
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(root, e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) < 2 || filepath.Base(args[0]) != "agent" || args[1] != "run" {
			continue
		}
		unit := ""
		if cg, err := os.ReadFile(filepath.Join(root, e.Name(), "cgroup")); err == nil {
			for _, f := range strings.FieldsFunc(string(cg), func(c rune) bool { return c == '/' || c == '\n' }) {
				if strings.HasSuffix(f, ".service") {
					unit = f
				}
			}
		}
		if unit != "" {
			return fmt.Sprintf("the agent daemon runs as %s (pid %d)", unit, pid)
		}
		return fmt.Sprintf("the agent daemon runs (pid %d), not under a systemd service", pid)
	}
	return "no agent daemon (agent run) is running"
}

// bufferState checks buffer.dir.
func (r *runner) bufferState() Result {
	dir := r.cfg.Buffer.Dir
	if dir == "" {
		return Result{Check: CheckService, Status: Warn, Detail: "buffer.dir is not set: readings made while the broker is away are kept in memory only",
			Fix: `set [buffer] dir = "/var/lib/agent/buffer" so that readings survive an outage and a restart`}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fail(CheckService, fmt.Sprintf("buffer.dir %s cannot be created: %v", dir, err),
			"create it, owned by the user the agent runs as (the packaged unit uses StateDirectory=agent)")
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return fail(CheckService, fmt.Sprintf("buffer.dir %s is not writable: %v", dir, err),
			"make it writable by the user the agent runs as; until then the agent keeps readings in memory only")
	}
	f.Close()
	os.Remove(f.Name())
	sum, err := buffer.Inspect(dir)
	if err != nil {
		return fail(CheckService, fmt.Sprintf("buffer.dir %s cannot be read: %v", dir, err), "make it readable by the user the agent runs as")
	}
	return Result{Check: CheckService, Status: Pass,
		Detail: fmt.Sprintf("buffer.dir %s is writable; queue depth %d (readings the broker has not acknowledged yet), %d record(s) in %d segment file(s)", dir, sum.Waiting, sum.Records, sum.Segments)}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
