package doctor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/pki"
	"github.com/edgeagent/agent/tlsclient"
)

// clockFloor: a board whose clock says earlier has no RTC and no NTP sync
// yet (it boots at the epoch), so every certificate looks not yet valid.
var clockFloor = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func date(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (r *runner) credentials(context.Context) Result {
	c := r.cfg
	now := r.o.Now()
	if now.Before(clockFloor) {
		return fail(CheckCredentials,
			fmt.Sprintf("this board's clock is not set (no RTC, NTP not synced): it says %s, so no certificate is valid yet", date(now)),
			"wait for NTP to sync (timedatectl: \"System clock synchronized: yes\") or set the date, then run agent doctor again")
	}
	files := tlsclient.Files{CA: c.TLS.CA, Cert: c.TLS.Cert, Key: c.TLS.Key}
	creds, err := tlsclient.Load(files, now)
	if err != nil {
		d, f := split(strings.TrimPrefix(err.Error(), "load TLS credentials: "))
		return fail(CheckCredentials, d, f)
	}
	leaf := creds.Cert.Leaf
	cn := leaf.Subject.CommonName
	if c.ID != "" && c.ID != cn {
		return fail(CheckCredentials,
			fmt.Sprintf("id %q in %s differs from the CN %q of tls.cert %s, and the broker's ACL (pattern … %%u) is keyed by the CN", c.ID, c.Path, cn, c.TLS.Cert),
			fmt.Sprintf("set id = %q or remove the id line, or issue a certificate for %q", cn, c.ID))
	}
	// Load already read the CA file; Go accepts a leaf that is itself in the
	// roots, so a tls.ca pointing at the device's own certificate passes
	// Load but is no CA (and the broker would not trust that "CA" anyway).
	data, err := os.ReadFile(c.TLS.CA)
	if err != nil {
		return fail(CheckCredentials, fmt.Sprintf("tls.ca %s: %v", c.TLS.CA, err), "fix the path in tls.ca or the file's permissions")
	}
	cas, err := pki.ParseCerts(data)
	if err != nil {
		return fail(CheckCredentials, fmt.Sprintf("tls.ca %s: %v", c.TLS.CA, err), "replace the file with the fleet CA certificate")
	}
	caFix := "point tls.ca at the fleet CA certificate (ca.crt from agent ca init, or the --ca file given to agent enroll), not a device or broker certificate"
	for _, ca := range cas {
		if !ca.BasicConstraintsValid || !ca.IsCA {
			return fail(CheckCredentials,
				fmt.Sprintf("tls.ca %s holds %s, which is not a CA certificate (no basicConstraints CA:TRUE)", c.TLS.CA, name(ca)), caFix)
		}
		if bytes.Equal(ca.RawSubject, leaf.RawSubject) {
			return fail(CheckCredentials,
				fmt.Sprintf("tls.ca %s holds a CA with the same subject as tls.cert (%s)", c.TLS.CA, name(ca)), caFix)
		}
	}
	r.creds = creds
	r.id = c.ID
	if r.id == "" {
		r.id = cn
	}
	if res, bad := r.serviceUserAccess(files); bad {
		return res
	}
	left := leaf.NotAfter.Sub(now)
	d := fmt.Sprintf("tls.cert CN=%s, %s key, issued by %s, valid until %s (%d days)",
		cn, keyKind(leaf), name1(leaf.Issuer.CommonName, leaf.Issuer.String()), date(leaf.NotAfter), int(left/day))
	if left < ExpiryWarning {
		fix := fmt.Sprintf("renewal is overdue: check that enroll.server %s is reachable and the agent's log for renewal errors, or enroll again (agent enroll --ca CA --token TOKEN --overwrite)", c.Enroll.Server)
		if !c.Enroll.Renews() {
			fix = fmt.Sprintf("renewal is off (enroll.renew = false): install a new tls.cert before %s", date(leaf.NotAfter))
		}
		return Result{Check: CheckCredentials, Status: Warn,
			Detail: fmt.Sprintf("tls.cert %s (CN=%s) expires on %s, in %.1f days", c.TLS.Cert, cn, date(leaf.NotAfter), left.Hours()/24),
			Fix:    fix}
	}
	return Result{Check: CheckCredentials, Status: Pass, Detail: d}
}

// serviceUserAccess checks the credential files as the service user would
// open them (the packaged unit runs as Options.ServiceUser): readable, and
// the key owned by that user or root. No such user: nothing to check.
func (r *runner) serviceUserAccess(f tlsclient.Files) (Result, bool) {
	u, err := user.Lookup(r.o.ServiceUser)
	if err != nil {
		return Result{}, false
	}
	uid, _ := strconv.Atoi(u.Uid)
	gids := map[int]bool{}
	if gs, err := u.GroupIds(); err == nil {
		for _, g := range gs {
			n, _ := strconv.Atoi(g)
			gids[n] = true
		}
	}
	for _, file := range []struct{ key, path string }{{"tls.ca", f.CA}, {"tls.cert", f.Cert}, {"tls.key", f.Key}} {
		fi, err := os.Stat(file.path)
		if err != nil {
			continue // Load has judged it
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		mode := fi.Mode().Perm()
		readable := uid == 0 || (int(st.Uid) == uid && mode&0o400 != 0) || (gids[int(st.Gid)] && mode&0o040 != 0) || mode&0o004 != 0
		if !readable {
			return fail(CheckCredentials,
				fmt.Sprintf("%s %s (owner uid %d, mode %04o) cannot be read by the service user %s (uid %d)", file.key, file.path, st.Uid, mode, u.Username, uid),
				fmt.Sprintf("chown %s %s (and keep a key at mode 0600)", u.Username, file.path)), true
		}
		if file.key == "tls.key" && int(st.Uid) != uid && st.Uid != 0 {
			return fail(CheckCredentials,
				fmt.Sprintf("tls.key %s is owned by uid %d, neither the service user %s nor root", file.path, st.Uid, u.Username),
				fmt.Sprintf("chown %s %s; chmod 600 %s", u.Username, file.path, file.path)), true
		}
	}
	return Result{}, false
}

func name(c *x509.Certificate) string {
	return name1("CN="+c.Subject.CommonName, c.Subject.String())
}

func name1(cn, full string) string {
	if cn == "" || cn == "CN=" {
		return full
	}
	return cn
}

func keyKind(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return "RSA-" + strconv.Itoa(k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", c.PublicKey)
}

// hostsAddrs returns the addresses a hosts file maps name to, in file order.
func hostsAddrs(data []byte, name string) []string {
	var addrs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 || net.ParseIP(f[0]) == nil {
			continue
		}
		for _, n := range f[1:] {
			if strings.EqualFold(n, name) && !slices.Contains(addrs, f[0]) {
				addrs = append(addrs, f[0])
			}
		}
	}
	return addrs
}

func (r *runner) resolve(ctx context.Context) Result {
	b := r.cfg.Broker
	host := b.Host
	port := strconv.Itoa(b.Port)

	hostsPath := r.o.HostsFile
	if hostsPath == "" {
		hostsPath = b.HostsFile
	}
	var pinned []string
	var parts []string
	if hostsPath != "" {
		data, err := os.ReadFile(hostsPath)
		switch {
		case err == nil:
			pinned = hostsAddrs(data, host)
			if len(pinned) > 0 {
				parts = append(parts, fmt.Sprintf("%s maps %s to %s", hostsPath, host, strings.Join(pinned, ", ")))
			} else {
				parts = append(parts, fmt.Sprintf("%s has no line for %s", hostsPath, host))
			}
		case errors.Is(err, fs.ErrNotExist):
			parts = append(parts, hostsPath+" does not exist")
		default:
			parts = append(parts, fmt.Sprintf("%s cannot be read (%v)", hostsPath, err))
		}
	}
	lctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	addrs, lerr := r.o.LookupHost(lctx, host)
	cancel()
	if lerr == nil && len(addrs) > 0 {
		parts = append(parts, fmt.Sprintf("the resolver says %s", strings.Join(addrs, ", ")))
	} else {
		why := "no addresses"
		if lerr != nil {
			why = lerr.Error()
		}
		parts = append(parts, fmt.Sprintf("the resolver does not resolve it (%s)", why))
	}
	detail := "broker.host " + host + ": " + strings.Join(parts, "; ")

	if a := b.Address; a != "" {
		if net.ParseIP(a) == nil {
			lctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
			aa, err := r.o.LookupHost(lctx, a)
			cancel()
			if err != nil || len(aa) == 0 {
				return fail(CheckResolve, fmt.Sprintf("broker.address %q does not resolve (%v)", a, err),
					"set broker.address to the broker's IP, or to a name that resolves (add it to /etc/hosts)")
			}
			detail += fmt.Sprintf("; broker.address %s resolves to %s", a, strings.Join(aa, ", "))
		} else {
			detail += "; broker.address " + a + " is dialled"
		}
		r.addr = net.JoinHostPort(a, port)
		if len(pinned) > 0 && net.ParseIP(a) != nil && !containsIP(pinned, a) {
			return Result{Check: CheckResolve, Status: Warn,
				Detail: fmt.Sprintf("%s pins %s to %s, but broker.address is %s: a stale pin", hostsPath, host, strings.Join(pinned, ", "), a),
				Fix: fmt.Sprintf("correct or remove the %s line in %s: other clients on this board (mosquitto_sub, renewal at %s) reach the old address",
					host, hostsPath, r.cfg.Enroll.Server)}
		}
		return Result{Check: CheckResolve, Status: Pass, Detail: detail}
	}
	if lerr == nil && len(addrs) > 0 {
		r.addr = net.JoinHostPort(host, port)
		return Result{Check: CheckResolve, Status: Pass, Detail: detail}
	}
	if b.Discover {
		return r.discover(ctx, detail)
	}
	return fail(CheckResolve, detail,
		fmt.Sprintf("add it to /etc/hosts or set broker.address / broker.discover (a hosts line is \"<broker IP> %s\")", host))
}

// discover browses for the broker as the daemon does (broker.service on
// broker.interfaces) and takes the first candidate; the TLS check then
// verifies it for broker.host like any address.
func (r *runner) discover(ctx context.Context, detail string) Result {
	b := r.cfg.Broker
	browser := r.o.Browser
	if browser == nil {
		browser = &discovery.MDNS{Interfaces: b.Interfaces, IPVersion: b.IPVersion}
	}
	svcs, err := browser.Browse(ctx, b.Service, b.DiscoverTimeout.Duration)
	if err != nil {
		return fail(CheckResolve, detail+fmt.Sprintf("; mDNS browse for %s failed: %v", b.Service, err),
			"check broker.interfaces names interfaces that are up with multicast, or set broker.address")
	}
	cands, skipped := discovery.Candidates(svcs, b.Instance, b.Host)
	if len(cands) == 0 {
		why := fmt.Sprintf("no %s service answered within %v", b.Service, b.DiscoverTimeout.Duration)
		if len(skipped) > 0 {
			why = fmt.Sprintf("%d answered but none can be used (%s: %s)", len(skipped), skipped[0].Instance, skipped[0].Reason)
		}
		return fail(CheckResolve, detail+"; mDNS: "+why,
			fmt.Sprintf("advertise the broker (a master with [advertise] interfaces, or an Avahi service file with TXT host=%s), check that multicast reaches this board, or set broker.address", b.Host))
	}
	c := cands[0]
	r.addr = c.Addr.String()
	for _, x := range cands[1:] {
		r.more = append(r.more, x.Addr.String())
	}
	return Result{Check: CheckResolve, Status: Pass,
		Detail: detail + fmt.Sprintf("; mDNS: %q at %s (%d candidate(s); the TLS check verifies it)", c.Instance, c.Addr, len(cands))}
}

func containsIP(list []string, ip string) bool {
	want := net.ParseIP(ip)
	for _, s := range list {
		if net.ParseIP(s).Equal(want) {
			return true
		}
	}
	return false
}

func (r *runner) tcp(ctx context.Context) Result {
	start := time.Now()
	d := net.Dialer{Timeout: r.o.Timeout}
	conn, err := d.DialContext(ctx, "tcp", r.addr)
	if err == nil {
		defer conn.Close()
		return Result{Check: CheckTCP, Status: Pass,
			Detail: fmt.Sprintf("connected to %s (%s) in %v", r.addr, conn.RemoteAddr(), time.Since(start).Round(time.Millisecond))}
	}
	port := r.cfg.Broker.Port
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail(CheckTCP, fmt.Sprintf("%s: connection refused, nothing listens on port %d", r.addr, port),
			fmt.Sprintf("start Mosquitto (systemctl status mosquitto) and check its TLS listener (listener %d in mosquitto.conf) listens on that address, or correct broker.port", port))
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return fail(CheckTCP, fmt.Sprintf("%s: no route to host", r.addr),
			"check this board's network link and routes (ip addr, ip route) and broker.address")
	case isTimeout(err):
		return fail(CheckTCP, fmt.Sprintf("%s: no answer within %v (timeout)", r.addr, r.o.Timeout),
			fmt.Sprintf("check that the broker is up and that no firewall drops port %d between this board and the broker", port))
	}
	return fail(CheckTCP, fmt.Sprintf("%s: %v", r.addr, err), "see the resolve check and the broker address")
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (r *runner) tls(ctx context.Context) Result {
	host := r.cfg.Broker.Host
	cfg := tlsclient.Config(tlsclient.NewHolder(r.creds), host, r.cfg.TLS.LegacyCN)
	dctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	conn, err := tlsclient.Dial(dctx, r.addr, cfg)
	var refused []string
	for err != nil && len(r.more) > 0 {
		// Discovered candidates are tried in turn, as the daemon does:
		// an advertisement only proposes an address, TLS decides.
		refused = append(refused, fmt.Sprintf("%s (%s)", r.addr, firstSentence(tlsclient.Explain(err, host))))
		r.addr, r.more = r.more[0], r.more[1:]
		conn, err = tlsclient.Dial(dctx, r.addr, cfg)
	}
	if err != nil {
		return r.tlsFailed(err)
	}
	r.conn = conn
	cs := conn.ConnectionState()
	leaf := cs.PeerCertificates[0]
	var sans []string
	for _, n := range leaf.DNSNames {
		sans = append(sans, "DNS:"+n)
	}
	for _, ip := range leaf.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	issuer := name1(leaf.Issuer.CommonName, leaf.Issuer.String())
	if len(sans) == 0 {
		return Result{Check: CheckTLS, Status: Warn,
			Detail: fmt.Sprintf("the broker certificate has no subjectAltName (CN-only, CN=%s, issued by %s); %s accepted it only because tls.legacy_cn = true",
				leaf.Subject.CommonName, issuer, tls.VersionName(cs.Version)),
			Fix: fmt.Sprintf("reissue the broker certificate with subjectAltName=DNS:%s (agent broker-config --ca-dir DIR --host %s), then remove tls.legacy_cn", host, host)}
	}
	detail := fmt.Sprintf("%s, broker certificate for %s issued by %s, verified for %s at %s", tls.VersionName(cs.Version), strings.Join(sans, ", "), issuer, host, r.addr)
	if len(refused) > 0 {
		return Result{Check: CheckTLS, Status: Warn, Detail: detail + "; refused first: " + strings.Join(refused, "; "),
			Fix: "other hosts advertise the broker's service but fail verification (a spoofer or a stale advertisement): set broker.instance to the right one, or remove the wrong advertisement"}
	}
	return Result{Check: CheckTLS, Status: Pass, Detail: detail}
}

// firstSentence cuts an explanation to its first sentence.
func firstSentence(s string) string {
	if i := strings.Index(s, ": "); i > 0 {
		return s[:i]
	}
	return s
}

// tlsFailed explains a refused handshake. The broker's "expired
// certificate" (alert 45) for a certificate the credentials check found
// valid means the broker's own CRL has expired: Mosquitto then refuses
// every client (the dojot tutorial's trap).
func (r *runner) tlsFailed(err error) Result {
	d, f := split(tlsclient.Explain(err, r.cfg.Broker.Host))
	if strings.Contains(err.Error(), "expired certificate") && r.creds != nil {
		if leaf := r.creds.Cert.Leaf; leaf != nil && r.o.Now().Before(leaf.NotAfter) {
			d += fmt.Sprintf("; our certificate is valid until %s, so what expired is most likely the broker's CRL (crlfile): Mosquitto then refuses every client", date(leaf.NotAfter))
			f = "regenerate the CRL (agent ca crl --dir DIR, or let a master with [crl] file keep it fresh), install it at the broker's crlfile and reload Mosquitto (SIGHUP)"
		}
	}
	return fail(CheckTLS, d, f)
}

// isAlert reports whether err is a TLS alert from the broker.
func isAlert(err error) bool { return tlsclient.IsAlert(err) }

// alertConn keeps a TLS alert that a failed write or read hides
// (tlsclient.FetchAlert says why).
type alertConn struct {
	net.Conn
	mu  sync.Mutex
	err error // the broker's alert, if one was read
}

func (c *alertConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.probe()
	}
	return n, err
}

func (c *alertConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !isAlert(err) {
		c.probe()
	}
	return n, err
}

func (c *alertConn) probe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = tlsclient.FetchAlert(c.Conn)
}

func (c *alertConn) alert() error { c.mu.Lock(); defer c.mu.Unlock(); return c.err }

// mqtt sends CONNECT on the verified connection. A TLS alert instead of a
// CONNACK comes back as tlsErr.
func (r *runner) mqtt(ctx context.Context) (cli *paho.Client, res Result, tlsErr error) {
	host := r.cfg.Broker.Host
	conn := &alertConn{Conn: r.conn}
	r.conn = nil // paho owns it now and closes it
	cli = paho.NewClient(paho.ClientConfig{
		Conn:          packets.NewThreadSafeConn(conn),
		OnClientError: func(error) {},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case r.got <- pr.Packet:
			default:
			}
			return true, nil
		}},
	})
	cid := r.id + "-doctor"
	cctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	ca, err := cli.Connect(cctx, &paho.Connect{ClientID: cid, CleanStart: true, KeepAlive: 30})
	if err != nil {
		conn.Close()
		if ca != nil && ca.ReasonCode >= 0x80 {
			text := connackText(ca.ReasonCode)
			if ca.Properties != nil && ca.Properties.ReasonString != "" {
				text += " (" + ca.Properties.ReasonString + ")"
			}
			return nil, fail(CheckMQTT, fmt.Sprintf("the broker refused CONNECT as client %q: CONNACK 0x%02x %s", cid, ca.ReasonCode, text),
				connackFix(ca.ReasonCode, r.id)), nil
		}
		if isAlert(err) {
			return nil, Result{}, err
		}
		if aerr := conn.alert(); aerr != nil {
			return nil, Result{}, aerr
		}
		if isTimeout(err) {
			return nil, fail(CheckMQTT, fmt.Sprintf("no CONNACK within %v after CONNECT", r.o.Timeout),
				"the TLS port does not answer MQTT: check that it is Mosquitto's listener and see the broker log"), nil
		}
		d, f := split(tlsclient.Explain(err, host))
		return nil, fail(CheckMQTT, "CONNECT: "+d, f), nil
	}
	d := fmt.Sprintf("CONNACK 0x00 as client %q (clean start, so the daemon's session is untouched)", cid)
	if ca.Properties != nil && ca.Properties.MaximumQoS != nil && *ca.Properties.MaximumQoS < 1 {
		return cli, Result{Check: CheckMQTT, Status: Warn, Detail: d + fmt.Sprintf("; the broker allows QoS %d at most", *ca.Properties.MaximumQoS),
			Fix: "set max_qos 2 (or remove it) in mosquitto.conf: the agent publishes telemetry with QoS 1"}, nil
	}
	return cli, Result{Check: CheckMQTT, Status: Pass, Detail: d}, nil
}

func connackText(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x81:
		return "malformed packet"
	case 0x82:
		return "protocol error"
	case 0x83:
		return "implementation specific error"
	case 0x84:
		return "unsupported protocol version"
	case 0x85:
		return "client identifier not valid"
	case 0x86:
		return "bad user name or password"
	case 0x87:
		return "not authorized"
	case 0x88:
		return "server unavailable"
	case 0x89:
		return "server busy"
	case 0x8A:
		return "banned"
	case 0x8C:
		return "bad authentication method"
	case 0x95:
		return "packet too large"
	case 0x97:
		return "quota exceeded"
	case 0x9F:
		return "connection rate exceeded"
	}
	return "refused"
}

func connackFix(code byte, id string) string {
	switch code {
	case 0x84:
		return "the broker does not speak MQTT v5: upgrade Mosquitto to 1.6 or later"
	case 0x85:
		return fmt.Sprintf("the broker refuses the client id %q-doctor: check clientid_prefixes in mosquitto.conf", id)
	case 0x86:
		return "the broker wants a user name and password: set use_identity_as_username true on its TLS listener, so the certificate CN is the user"
	case 0x87:
		return fmt.Sprintf("the broker does not let user %q (the certificate CN) connect: see the broker log and its auth plugin or password settings", id)
	case 0x88, 0x89, 0x97, 0x9F:
		return "the broker is overloaded or shutting down: try again later and see the broker log"
	case 0x8A:
		return fmt.Sprintf("this client is banned by the broker: see the broker's configuration for %q", id)
	}
	return "see the broker log for this client"
}

func (r *runner) publish(ctx context.Context, cli *paho.Client) Result {
	prefix := r.cfg.MQTT.Prefix
	// A reading-shaped message on a telemetry topic of its own: the same
	// ACL line covers the status topic, which the doctor leaves alone (a
	// publish there would rewrite what the fleet sees of this device).
	topic := prefix + "/" + r.id + "/telemetry/doctor"
	payload, _ := json.Marshal(map[string]any{"ts": r.o.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), "sensor": "doctor", "type": "doctor", "seq": 0, "values": map[string]any{}})
	pctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	pr, err := cli.Publish(pctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload})
	if pr != nil && pr.ReasonCode >= 0x80 {
		if pr.ReasonCode == 0x87 {
			return fail(CheckPublish,
				fmt.Sprintf("the broker refused the QoS 1 publish to %s: PUBACK 0x87 not authorized", topic),
				fmt.Sprintf("the broker's ACL does not let user %q (the certificate CN) write %s: add `pattern write %s/%%u/#` to its acl_file and reload Mosquitto (SIGHUP)", r.id, topic, prefix))
		}
		return fail(CheckPublish, fmt.Sprintf("the broker refused the QoS 1 publish to %s: PUBACK 0x%02x", topic, pr.ReasonCode),
			"see the broker log for this client")
	}
	if err != nil {
		if isTimeout(err) {
			return fail(CheckPublish, fmt.Sprintf("no PUBACK for %s within %v", topic, r.o.Timeout), "see the broker log: it may be overloaded")
		}
		d, f := split(tlsclient.Explain(err, r.cfg.Broker.Host))
		return fail(CheckPublish, "publish "+topic+": "+d, f)
	}
	return Result{Check: CheckPublish, Status: Pass, Detail: fmt.Sprintf("QoS 1 publish to %s acknowledged", topic)}
}
