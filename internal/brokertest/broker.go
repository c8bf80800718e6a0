// Package brokertest runs Debian's Mosquitto with mutual TLS on a free
// loopback port, with a throwaway PKI, for the integration tests and for
// `make demo`. Nothing here mocks the broker: it is the real one.
//
//	f, err := brokertest.NewFleet(dir)      // CA, broker, monitor and ops certificates
//	b, err := f.Start(ctx, brokertest.Options{})
//	defer b.Stop()
//	dev, _ := f.Device("dev1")              // cert/key for an agent, CN dev1
package brokertest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultACL is the fleet ACL of the wire contract: a device writes only under
// edge/<cn>/ and reads only its command topic (and manages its own Home
// Assistant discovery configs); "monitor" reads everything and
// "ops" may command any device and read the replies.
const DefaultACL = `pattern write edge/%u/#
pattern read edge/%u/cmd
pattern readwrite homeassistant/+/%u/#

user monitor
topic read #

user ops
topic readwrite edge/#
`

// Options tune one broker.
type Options struct {
	ACL string // ACL file contents; "" is DefaultACL
	// NoNagle false keeps Mosquitto's default set_tcp_nodelay false (to
	// measure the 40 ms delayed-ACK stall); the zero Options set it true.
	KeepNagle bool
	CertFile  string // broker certificate; "" is the fleet's broker.crt
	KeyFile   string
	Extra     string // more mosquitto.conf lines
	Port      int    // listen here (e.g. to restart a broker in place); 0 picks a free port
	// Listen is the address to listen on ("" is 127.0.0.1).
	Listen string
	// PersistDir keeps sessions and queued messages there across restarts
	// (saved after every change), for persistent-session subscribers that
	// must not miss anything; "" keeps nothing.
	PersistDir string
	// Wrap runs the broker and clients through a command prefix, e.g.
	// {"ip", "netns", "exec", "ns1"} to put them in a test's network
	// namespace; readiness is then read from the broker's log (the test
	// process cannot dial into the namespace). Needs Port set.
	Wrap []string
}

// Broker is a running Mosquitto.
type Broker struct {
	Addr string // listen address:port
	Host string // listen address
	Port int
	Dir  string
	Wrap []string

	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// MosquittoPath is where Debian installs the broker.
var MosquittoPath = "/usr/sbin/mosquitto"

// Available reports why Mosquitto cannot run here, or nil.
func Available() error {
	if _, err := os.Stat(MosquittoPath); err != nil {
		return fmt.Errorf("mosquitto not installed (%v): run `make deps` or apt-get install mosquitto mosquitto-clients", err)
	}
	for _, c := range []string{"mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not installed: apt-get install mosquitto-clients", c)
		}
	}
	return nil
}

// start runs mosquitto with the given listener files in dir, retrying on a
// port lost to a race between picking it and Mosquitto binding it.
func start(ctx context.Context, dir, ca, cert, key string, o Options) (*Broker, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	acl := o.ACL
	if acl == "" {
		acl = DefaultACL
	}
	aclPath := filepath.Join(dir, "acl")
	if err := os.WriteFile(aclPath, []byte(acl), 0o644); err != nil {
		return nil, err
	}
	var lastErr, err error
	for attempt := 0; attempt < 5; attempt++ {
		port := o.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		var conf strings.Builder
		if os.Geteuid() == 0 {
			// Mosquitto started as root drops to the mosquitto user, which
			// cannot read a 0700 temp dir; stay root in tests.
			conf.WriteString("user root\n")
		}
		fmt.Fprintf(&conf, "per_listener_settings false\nallow_anonymous false\n")
		if o.PersistDir != "" {
			fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\nautosave_interval 1\nautosave_on_changes true\n", o.PersistDir)
		} else {
			conf.WriteString("persistence false\n")
		}
		fmt.Fprintf(&conf, "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nconnection_messages true\n")
		fmt.Fprintf(&conf, "set_tcp_nodelay %t\n", !o.KeepNagle)
		fmt.Fprintf(&conf, "acl_file %s\n", aclPath)
		host := o.Listen
		if host == "" {
			host = "127.0.0.1"
		}
		fmt.Fprintf(&conf, "listener %d %s\ncafile %s\ncertfile %s\nkeyfile %s\n", port, host, ca, cert, key)
		fmt.Fprintf(&conf, "require_certificate true\nuse_identity_as_username true\ntls_version tlsv1.2\n")
		conf.WriteString(o.Extra)
		confPath := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
			return nil, err
		}
		b := &Broker{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Host: host, Port: port, Dir: dir, Wrap: o.Wrap,
			logPath: filepath.Join(dir, "mosquitto.log"), done: make(chan struct{})}
		logf, err := os.Create(b.logPath)
		if err != nil {
			return nil, err
		}
		b.cmd = wrapped(o.Wrap, MosquittoPath, "-c", confPath)
		b.cmd.Stdout, b.cmd.Stderr = logf, logf
		if err := b.cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start mosquitto: %w", err)
		}
		go func() { b.waitErr = b.cmd.Wait(); logf.Close(); close(b.done) }()
		if err := b.waitReady(ctx, 10*time.Second); err != nil {
			b.Stop()
			lastErr = err
			if o.Port == 0 && strings.Contains(b.Log(), "Address already in use") {
				continue
			}
			return nil, err
		}
		return b, nil
	}
	return nil, lastErr
}

func (b *Broker) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if len(b.Wrap) > 0 {
			if strings.Contains(b.Log(), " running") {
				return nil
			}
		} else if c, err := net.DialTimeout("tcp", b.Addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-b.done:
			return fmt.Errorf("mosquitto exited at start (%v); log:\n%s", b.waitErr, b.Log())
		case <-ctx.Done():
			return fmt.Errorf("mosquitto not listening on %s after %v; log:\n%s", b.Addr, limit, b.Log())
		case <-tick.C:
		}
	}
}

// Log returns what Mosquitto has logged so far.
func (b *Broker) Log() string {
	data, _ := os.ReadFile(b.logPath)
	return string(data)
}

// Stop ends the broker and waits for it (at most 5 s).
func (b *Broker) Stop() {
	b.once.Do(func() {
		_ = b.cmd.Process.Signal(os.Interrupt)
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	})
}

// Kill ends the broker with SIGKILL (no goodbye, no save) and waits for it.
func (b *Broker) Kill() {
	b.once.Do(func() {
		_ = b.cmd.Process.Kill()
		<-b.done
	})
}

// Done is closed when the broker process has exited.
func (b *Broker) Done() <-chan struct{} { return b.done }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Client runs mosquitto_sub/mosquitto_pub as an independent client of the
// broker with the given certificate (CN = MQTT user).
type Client struct {
	Broker        *Broker
	CA, Cert, Key string
	lines         chan string
}

func (c *Client) tlsArgs() []string {
	return []string{"-h", c.Broker.Host, "-p", strconv.Itoa(c.Broker.Port), "--cafile", c.CA, "--cert", c.Cert, "--key", c.Key, "-V", "mqttv5"}
}

// Pub publishes one message with mosquitto_pub. props are extra -D arguments,
// e.g. "publish response-topic edge/dev1/reply/x". It also fails when the
// broker refuses the message (an MQTT v5 PUBACK reason code of 0x80 or
// more, e.g. 0x87 not authorized from the ACL): mosquitto_pub 2.0.11 only
// prints "Warning: Publish 1 failed: Not authorized." then and exits 0.
func (c *Client) Pub(ctx context.Context, topic string, payload []byte, qos int, retain bool, props ...[]string) error {
	args := append(c.tlsArgs(), "-t", topic, "-q", strconv.Itoa(qos), "-s")
	if retain {
		args = append(args, "-r")
	}
	for _, p := range props {
		args = append(args, "-D")
		args = append(args, p...)
	}
	cmd := wrappedContext(ctx, c.Broker.Wrap, "mosquitto_pub", args...)
	cmd.Stdin = bytes.NewReader(payload)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto_pub %s: %w: %s", topic, err, out)
	}
	if m := pubFailedRE.FindSubmatch(out); m != nil {
		return fmt.Errorf("mosquitto_pub %s: refused by the broker: %s", topic, m[1])
	}
	return nil
}

// Sub is a running mosquitto_sub printing "topic payload" lines.
type Sub struct {
	Lines  <-chan string // closed when mosquitto_sub exits
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
}

// Subscribe starts mosquitto_sub -v on the topics and returns once it has
// subscribed (it prints nothing until then, so the caller gets no race).
func (c *Client) Subscribe(ctx context.Context, topics ...string) (*Sub, error) {
	// One line a message: topic, retain flag, correlation data, payload.
	args := append(c.tlsArgs(), "-F", `%t\t%r\t%D\t%p`, "-q", "1", "-d")
	for _, t := range topics {
		args = append(args, "-t", t)
	}
	s := &Sub{done: make(chan struct{})}
	// stdbuf: mosquitto_sub's debug lines (the SUBACK we wait for) are
	// block-buffered on a pipe otherwise.
	s.cmd = wrappedContext(ctx, c.Broker.Wrap, "stdbuf", append([]string{"-oL", "mosquitto_sub"}, args...)...)
	s.cmd.Stderr = &s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mosquitto_sub: %w", err)
	}
	lines := make(chan string, 4096)
	s.Lines = lines
	subscribed := make(chan struct{})
	var acked atomic.Bool // SUBACK seen (else subscribed closed because it exited)
	go func() {
		defer close(lines)
		defer close(s.done)
		var once sync.Once
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 1<<16), 16<<20) // a fleet summary of thousands of devices is megabytes
		for {
			if !sc.Scan() {
				once.Do(func() { close(subscribed) })
				_ = s.cmd.Wait()
				return
			}
			line := sc.Text()
			// -d prints protocol debug lines; they start with "Client ".
			if strings.HasPrefix(line, "Client ") {
				if strings.Contains(line, "received SUBACK") {
					acked.Store(true)
					once.Do(func() { close(subscribed) })
				}
				continue
			}
			if strings.HasPrefix(line, "Subscribed (mid") {
				continue
			}
			lines <- line
		}
	}()
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		s.Stop()
		return nil, errors.New("mosquitto_sub did not subscribe within 10s")
	}
	if !acked.Load() {
		<-s.done
		return nil, fmt.Errorf("mosquitto_sub exited before subscribing: %s", s.stderr.String())
	}
	return s, nil
}

// Stop ends the subscriber.
func (s *Sub) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

// Msg is one message as mosquitto_sub printed it.
type Msg struct {
	Topic       string
	Retained    bool
	Correlation string // MQTT v5 Correlation Data
	Payload     string
}

// ParseMsg splits one line of Lines.
func ParseMsg(line string) Msg {
	f := strings.SplitN(line, "\t", 4)
	for len(f) < 4 {
		f = append(f, "")
	}
	return Msg{Topic: f[0], Retained: f[1] == "1", Correlation: f[2], Payload: f[3]}
}

// Next returns the payload of the next message on topic, or an error after
// timeout. Messages on other topics are skipped.
func (s *Sub) Next(topic string, timeout time.Duration) (payload string, err error) {
	m, err := s.NextMsg(topic, timeout)
	return m.Payload, err
}

// NextMsg returns the next message on topic ("" for any topic), or an
// error after timeout.
func (s *Sub) NextMsg(topic string, timeout time.Duration) (Msg, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case line, ok := <-s.Lines:
			if !ok {
				return Msg{}, fmt.Errorf("mosquitto_sub ended before a message on %q: %s", topic, s.stderr.String())
			}
			if m := ParseMsg(line); topic == "" || m.Topic == topic {
				return m, nil
			}
		case <-deadline.C:
			return Msg{}, fmt.Errorf("no message on %q within %v", topic, timeout)
		}
	}
}

// Pid is the mosquitto_sub process id (for RSS comparisons).
func (s *Sub) Pid() int { return s.cmd.Process.Pid }

func wrapped(wrap []string, name string, args ...string) *exec.Cmd {
	return wrappedContext(context.Background(), wrap, name, args...)
}

func wrappedContext(ctx context.Context, wrap []string, name string, args ...string) *exec.Cmd {
	if len(wrap) == 0 {
		return exec.CommandContext(ctx, name, args...)
	}
	full := append(append(append([]string{}, wrap[1:]...), name), args...)
	return exec.CommandContext(ctx, wrap[0], full...)
}
