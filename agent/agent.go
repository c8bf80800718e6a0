// Package agent is the daemon: it wires the sensors, the MQTT connection and
// the command executor together and owns their life cycle.
//
// Two flows run through one connection to the broker (mutual TLS, MQTT v5):
//
//	up:   Scheduler ──Reading──▶ publisher ──▶ <prefix>/<id>/telemetry/<sensor>
//	down: <prefix>/<id>/cmd ──▶ queue ──▶ executor (one at a time, dedup by id)
//	          ──▶ actuators ──state──▶ <prefix>/<id>/state/<actuator> (retained)
//	          └──reply──▶ Response Topic, or <prefix>/<id>/reply
//
// A retained <prefix>/<id>/status says online/offline; offline is also the
// MQTT will, so a board that dies is reported by the broker.
//
//	d, err := agent.New(agent.Options{Config: cfg, Version: "1.0.0", Logger: log})
//	if errors.Is(err, agent.ErrRefused) { /* exit 2: bad config or credentials */ }
//	err = d.Run(ctx) // until ctx ends; then offline, clean disconnect
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edgeagent/agent/agent/buffer"
	"github.com/edgeagent/agent/agent/config"
	"github.com/edgeagent/agent/agent/fleet"
	"github.com/edgeagent/agent/discovery"
	"github.com/edgeagent/agent/pki"
	"github.com/edgeagent/agent/sensors"
	gpiokind "github.com/edgeagent/agent/sensors/gpio"
	"github.com/edgeagent/agent/sensors/hostenv"
	"github.com/edgeagent/agent/sensors/kinds"
	"github.com/edgeagent/agent/tlsclient"
)

// ErrRefused is wrapped by every reason New refuses to start: the config or
// the credentials are wrong and retrying will not help (the CLI exits 2).
var ErrRefused = errors.New("refusing to start")

// Options configure a Daemon.
type Options struct {
	Config  *config.Config
	Version string
	Logger  *slog.Logger     // nil discards
	Now     func() time.Time // nil is time.Now
	// ShutdownTimeout bounds the offline publish and disconnect on stop.
	ShutdownTimeout time.Duration
	// Browser finds the broker when broker.discover is set; nil is mDNS
	// on broker.interfaces.
	Browser discovery.Browser
	// GCPercent, when set, is the garbage collector's target in steady
	// state (a board's small live heap: 20 keeps RSS low); while a backlog
	// drains the default 100 is used, since a drain allocates fast.
	GCPercent int
	// Hardware is what sensor and actuator kinds use (buses, pins, /sys);
	// nil is this machine's (periph.io host drivers, /sys, /proc).
	Hardware *sensors.Env
}

// Daemon is one running agent.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	now     func() time.Time
	version string
	id      string
	topics  topics
	started time.Time
	stopTO  time.Duration

	creds   *tlsclient.Holder
	tlsConf *tls.Config

	sensors   []sensors.Sensor
	sensorBy  map[string]sensors.Sensor
	intervals map[string]time.Duration
	actuators []sensors.Actuator
	actBy     map[string]sensors.Actuator

	fleet *fleet.Tracker // master: the fleet view (nil on a remote)
	ca    *pki.Dir       // master: enroll.ca_dir (nil: no CA here)
	estLn net.Listener   // master: enroll.listen (nil: not serving)

	browser  discovery.Browser
	env      *sensors.Env
	closeEnv func() // releases buses opened for the kinds (nil: none)
	broker   brokerAddr
	pins     chan netip.Addr // to pinLoop

	cm         *mqttLink
	queue      *cmdQueue
	dedup      *dedup
	up         chan context.Context // a connection came up: subscribe, announce (ctx ends with it)
	link       link
	actMu      sync.Mutex // orders actuator Set+state publish against the announce
	flaps      flapBackoff
	ha         haCollector
	goodbye    atomic.Bool // offline could not be published: disconnect so the broker sends the will
	buf        *buffer.Log // store and forward: every reading goes through it
	lastErr    atomic.Pointer[string]
	trim       sync.Once
	handover   atomic.Bool // stopping for a reload: no offline status
	backlog    backlogTracker
	gcPercent  int
	window     *sendWindow
	reconnects atomic.Uint64 // connections made (the first counts)
	refused    refusals
	attempt    attemptState
	notify     *notifier     // systemd's notify socket (nil: none)
	beat       chan struct{} // the watchdog's probe, served by an idle announceLoop
}

// New checks the config and credentials and builds the parts. Every error
// wraps ErrRefused and names the file or key to fix.
func New(o Options) (*Daemon, error) {
	cfg := o.Config
	if cfg == nil {
		return nil, fmt.Errorf("%w: no config", ErrRefused)
	}
	d := &Daemon{
		cfg: cfg, log: o.Logger, now: o.Now, version: o.Version, stopTO: o.ShutdownTimeout,
		sensorBy: map[string]sensors.Sensor{}, intervals: map[string]time.Duration{}, actBy: map[string]sensors.Actuator{},
		queue: newCmdQueue(maxQueued), window: newSendWindow(), pins: make(chan netip.Addr, 1), dedup: newDedup(dedupSize), up: make(chan context.Context, 1),
		beat: make(chan struct{}),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.gcPercent = o.GCPercent
	if d.stopTO == 0 {
		d.stopTO = 1500 * time.Millisecond
	}
	creds, err := tlsclient.Load(tlsclient.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}, d.now())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	cn := creds.Cert.Leaf.Subject.CommonName
	switch {
	case cfg.ID == "" && !config.ValidID(cn):
		return nil, fmt.Errorf("%w: config %s: id is unset and the certificate %s has CN %q, which cannot be a device id (1-64 letters, digits, '.', '_', '-'): reissue the certificate", ErrRefused, cfg.Path, cfg.TLS.Cert, cn)
	case cfg.ID == "":
		d.id = cn
	case cfg.ID != cn:
		return nil, fmt.Errorf("%w: config %s: id %q differs from the CN %q of %s: the broker's ACL (pattern … %%u) is keyed by the CN, so set id = %q or remove it, or issue a certificate for %q", ErrRefused, cfg.Path, cfg.ID, cn, cfg.TLS.Cert, cn, cfg.ID)
	default:
		d.id = cfg.ID
	}
	d.creds = tlsclient.NewHolder(creds)
	d.tlsConf = tlsclient.Config(d.creds, cfg.Broker.Host, cfg.TLS.LegacyCN)
	d.topics = newTopics(cfg.MQTT.Prefix, d.id)
	d.env = o.Hardware
	if d.env == nil {
		d.env = &sensors.Env{SysRoot: "/sys", ProcRoot: "/proc", Clock: sensors.RealClock{}, Logger: d.log}
		if needsHost(cfg) {
			// periph's host drivers, once, only when hardware is configured.
			d.env, d.closeEnv = hostenv.New(d.log, gpiokind.HostPin)
		}
	}
	for i, sc := range cfg.Sensors {
		spec := sensors.Spec{Name: sc.Name, Type: sc.Type, Options: sc.Options, Env: d.env}
		s, err := kinds.NewSensor(spec)
		switch {
		case err != nil && kinds.IsConfigError(err):
			d.closeParts()
			return nil, fmt.Errorf("%w: config %s: sensor[%d]: %w", ErrRefused, cfg.Path, i, err)
		case err != nil:
			// Absent or silent hardware: the rest of the agent runs, and
			// this sensor reports the error and retries with backoff.
			d.log.Warn("sensor hardware not available; retrying", "sensor", sc.Name, "err", err)
			s = kinds.DeferredSensor(spec)
		}
		d.sensors = append(d.sensors, s)
		d.sensorBy[s.Name()] = s
		d.intervals[s.Name()] = sc.Interval.Duration
	}
	for i, ac := range cfg.Actuators {
		spec := sensors.Spec{Name: ac.Name, Type: ac.Type, Options: ac.Options, Env: d.env}
		a, err := kinds.NewActuator(spec)
		switch {
		case err != nil && kinds.IsConfigError(err):
			d.closeParts()
			return nil, fmt.Errorf("%w: config %s: actuator[%d]: %w", ErrRefused, cfg.Path, i, err)
		case err != nil:
			d.log.Warn("actuator hardware not available; each command retries", "actuator", ac.Name, "err", err)
			a = kinds.DeferredActuator(spec)
		}
		d.actuators = append(d.actuators, a)
		d.actBy[a.Name()] = a
	}
	d.log = d.log.With("id", d.id)
	if cfg.Role == config.RoleMaster {
		d.fleet = fleet.NewTracker(cfg.MQTT.Prefix, 0)
	}
	if err := d.openCA(); err != nil {
		d.closeParts()
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if err := d.openBuffer(); err != nil {
		d.closeParts()
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	d.browser = o.Browser
	if d.browser == nil {
		d.browser = &discovery.MDNS{Interfaces: cfg.Broker.Interfaces, IPVersion: cfg.Broker.IPVersion, Logger: d.log}
	}
	return d, nil
}

// ID is the device id in use (the certificate's CN).
func (d *Daemon) ID() string { return d.id }

// Run connects and works until ctx ends, then publishes offline and
// disconnects within the shutdown timeout. A cancelled ctx is a clean stop
// and returns nil.
func (d *Daemon) Run(ctx context.Context) error {
	d.started = d.now()
	d.link.base = ctx
	// The connection outlives ctx by the shutdown: offline must still go out.
	connCtx, connCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer connCancel()
	d.notify = newNotifier(os.Getenv, os.Getpid())
	cm := newMQTTLink(d)
	d.cm = cm
	// Ready once configured and dialling, not once connected: a board
	// often boots before its broker, and units ordered after the agent
	// must not wait for the network. Sent just before the link manager
	// starts so READY=1 always precedes its first STATUS.
	d.notify.Send("READY=1\nSTATUS=connecting to " + d.brokerLabel())
	go cm.run(connCtx)
	d.log.Info("agent starting", "version", d.version, "role", d.cfg.Role, "broker", d.brokerLabel(),
		"sensors", len(d.sensors), "actuators", len(d.actuators))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.announceLoop(gctx) })
	g.Go(func() error { return d.execLoop(gctx) })
	g.Go(func() error { return d.pinLoop(gctx) })
	g.Go(func() error { return d.sendLoop(gctx) })
	g.Go(func() error { return d.healthLoop(gctx) })
	if n := d.notify; n != nil && n.watchdog > 0 {
		g.Go(func() error { return d.watchdogLoop(gctx, n, d.stallLimit()) })
	}
	if d.fleet != nil {
		g.Go(func() error { return d.fleetLoop(gctx) })
	}
	if d.estLn != nil {
		g.Go(func() error { return d.serveEnrollment(gctx, d.estLn) })
	}
	if d.ca != nil && d.cfg.CRL.File != "" {
		g.Go(func() error { return d.crlLoop(gctx) })
	}
	if d.cfg.Enroll.Renews() {
		g.Go(func() error { return d.renewer().Run(gctx) })
	}
	if d.cfg.Role == config.RoleMaster && len(d.cfg.Advertise.Interfaces) > 0 {
		g.Go(func() error { return d.advertiseLoop(gctx, d.cfg.Advertise.Refresh.Duration) })
	}
	g.Go(func() error {
		// Sampling starts at once, connected or not: readings wait in the
		// buffer (a board often boots before its broker).
		sched := &sensors.Scheduler{Clock: d.env.Clock, Logger: d.log, LastSeq: d.buf.LastSeq}
		for _, s := range d.sensors {
			sched.Add(s, d.intervals[s.Name()])
		}
		return sched.Run(gctx, func(r sensors.Reading) { d.publishReading(gctx, r) })
	})
	runErr := g.Wait()
	d.notify.Send("STOPPING=1")

	sctx, cancel := context.WithTimeout(context.Background(), d.stopTO)
	defer cancel()
	pctx, pcancel := context.WithTimeout(sctx, d.stopTO*2/3)
	if d.handover.Load() {
		d.log.Info("stopping for a reload: the new config takes over")
	} else if err := d.publishJSON(pctx, d.topics.status, d.statusPayload("offline"), true, nil); err != nil {
		// DISCONNECT 0x04 asks the broker to publish the will (offline)
		// instead of discarding it, so online is not left retained.
		d.goodbye.Store(true)
		d.log.Warn("could not publish offline on stop; asking the broker to publish the will", "err", err)
	}
	pcancel()
	if err := cm.Disconnect(sctx, d.goodbye.Load()); err != nil {
		d.log.Warn("disconnect did not finish in time", "err", err)
	}
	d.closeParts()
	if d.buf != nil {
		st := d.buf.Stats()
		if err := d.buf.Close(); err != nil {
			d.log.Error("buffer not closed cleanly; unacknowledged readings are sent again at the next start", "err", err)
		}
		d.log.Info("agent stopped", "queue_depth", st.Depth, "dropped", st.Dropped)
	} else {
		d.log.Info("agent stopped")
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// announceLoop does the work of each new connection outside paho's
// callback (which must not block): subscribe to commands, publish actuator
// states and online.
func (d *Daemon) announceLoop(ctx context.Context) error {
	for {
		// Work for one connection ends with it (lctx): a subscribe waiting on
		// a dead connection must not delay the next connection's online.
		var lctx context.Context
		select {
		case <-ctx.Done():
			return nil
		case <-d.beat: // idle, hence responsive (watchdogLoop)
			continue
		case lctx = <-d.up:
		}
		if err := d.subscribe(lctx); err != nil && lctx.Err() == nil {
			d.log.Error("subscribe to commands failed", "topic", d.topics.cmd, "err", err)
		}
		if d.fleet != nil {
			if err := d.subscribeFleet(lctx); err != nil && lctx.Err() == nil {
				d.log.Error("subscribe to the fleet failed", "err", err)
			}
		}
		d.actMu.Lock()
		for _, a := range d.actuators {
			_ = d.publishState(lctx, a.Name(), a.State())
		}
		d.actMu.Unlock()
		if d.cfg.HA.Discovery {
			d.announceHA(lctx)
		}
		if err := d.publishJSON(lctx, d.topics.status, d.statusPayload("online"), true, nil); err == nil {
			d.log.Info("online", "status", d.topics.status)
			// Start-up is over; a backlog drains in the first seconds.
			d.trim.Do(func() { time.AfterFunc(trimAfter, trimBinaryPages) })
		}
	}
}

type status struct {
	State       string `json:"state"`
	Role        string `json:"role"`
	Version     string `json:"version"`
	TS          string `json:"ts"`
	CertExpires string `json:"cert_expires,omitempty"`
	// Health: readings waiting in the buffer, readings dropped (buffer
	// full) since start, connections made, the last error worth telling.
	QueueDepth int    `json:"queue_depth"`
	Dropped    uint64 `json:"dropped"`
	Reconnects uint64 `json:"reconnects"`
	LastError  string `json:"last_error,omitempty"`
}

func (d *Daemon) statusPayload(state string) status {
	st := status{State: state, Role: d.cfg.Role, Version: d.version, TS: stamp(d.now()), Reconnects: d.reconnects.Load()}
	if c := d.creds.Current(); c != nil && c.Cert.Leaf != nil {
		st.CertExpires = c.Cert.Leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	if d.buf != nil {
		bs := d.buf.Stats()
		st.QueueDepth, st.Dropped = bs.Depth, bs.Dropped
		if bs.LastError != "" {
			st.LastError = bs.LastError
		}
	}
	if e := d.lastErr.Load(); e != nil && st.LastError == "" {
		st.LastError = *e
	}
	return st
}

// setLastError remembers an error for the status's last_error.
func (d *Daemon) setLastError(s string) {
	if len(s) > 200 {
		s = s[:200]
	}
	d.lastErr.Store(&s)
}

// openCA opens enroll.ca_dir on a master that serves enrollment or keeps
// the CRL, and binds enroll.listen, so a bad directory or a taken port is a
// startup error that names it.
func (d *Daemon) openCA() error {
	c := d.cfg
	if c.Role != config.RoleMaster || (c.Enroll.Listen == "" && c.CRL.File == "") {
		return nil
	}
	dir, err := pki.OpenDir(c.Enroll.CADir)
	if err != nil {
		return fmt.Errorf("config %s: enroll.ca_dir: %w", c.Path, err)
	}
	d.ca = dir
	if c.Enroll.Listen != "" {
		ln, err := net.Listen("tcp", c.Enroll.Listen)
		if err != nil {
			return fmt.Errorf("config %s: enroll.listen %q: %w", c.Path, c.Enroll.Listen, err)
		}
		d.estLn = ln
	}
	return nil
}

// EnrollAddr is the address the enrollment server listens on ("" when it
// does not).
func (d *Daemon) EnrollAddr() string {
	if d.estLn == nil {
		return ""
	}
	return d.estLn.Addr().String()
}

// stamp formats t as RFC 3339 UTC with milliseconds.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// needsHost reports whether a configured kind uses the board's hardware.
func needsHost(cfg *config.Config) bool {
	for _, s := range cfg.Sensors {
		if s.Type != "sim" {
			return true
		}
	}
	for _, a := range cfg.Actuators {
		if a.Type != "sim" {
			return true
		}
	}
	return false
}

// closeParts applies each part's stop behaviour (an output's on_stop, a
// sensor's periodic measurement) and releases the buses.
func (d *Daemon) closeParts() {
	for _, a := range d.actuators {
		if c, ok := a.(sensors.Closer); ok {
			if err := c.Close(); err != nil {
				d.log.Warn("actuator stop", "actuator", a.Name(), "err", err)
			}
		}
	}
	for _, s := range d.sensors {
		if c, ok := s.(sensors.Closer); ok {
			if err := c.Close(); err != nil {
				d.log.Warn("sensor stop", "sensor", s.Name(), "err", err)
			}
		}
	}
	if d.closeEnv != nil {
		d.closeEnv()
	}
	if d.estLn != nil {
		d.estLn.Close() // already closed when it was served
	}
}

// link hands each connection a context that ends when the connection goes
// down (or the run ends).
type link struct {
	mu     sync.Mutex
	base   context.Context
	ctx    context.Context // the live connection's (valid while cancel != nil)
	cancel context.CancelFunc
}

func (l *link) up() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
	}
	l.ctx, l.cancel = context.WithCancel(l.base)
	return l.ctx
}

// current returns the live connection's context, or nil when down.
func (l *link) current() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel == nil {
		return nil
	}
	return l.ctx
}

func (l *link) down() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
	}
}

// refusals rate-limits the log of publishes the broker refuses: the first
// refusal on a topic is logged at once, then at most one line a minute with
// the count, so a denied 5 Hz sensor neither floods the log nor goes quiet.
type refusals struct {
	mu   sync.Mutex
	last map[string]time.Time
	n    map[string]int
}

func (r *refusals) note(topic string, now time.Time) (log bool, count int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last, r.n = map[string]time.Time{}, map[string]int{}
	}
	if len(r.n) > 256 { // topics come from requesters' Response Topics: bound them
		clear(r.n)
		clear(r.last)
	}
	r.n[topic]++
	if t, ok := r.last[topic]; ok && now.Sub(t) < time.Minute {
		return false, r.n[topic]
	}
	r.last[topic] = now
	count = r.n[topic]
	r.n[topic] = 0
	return true, count
}
