// Package config reads the agent's one TOML file into a validated Config.
//
// Decoding is strict: an unknown key is an error that names it, and every
// invalid value is reported with the file, the key, the value and the fix, so
// a typo on a board never turns into a silently ignored setting.
//
//	cfg, err := config.Load("/etc/agent/agent.toml")
//	if errors.Is(err, config.ErrInvalid) { /* exit 2 */ }
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/edgeagent/agent/hostsfile"
)

// DefaultPath is where the agent looks for its config on a board.
const DefaultPath = "/etc/agent/agent.toml"

// ErrInvalid is wrapped by every error about the config file's content.
var ErrInvalid = errors.New("invalid config")

// Roles the agent can take.
const (
	RoleRemote = "remote"
	RoleMaster = "master"
)

// Config is the whole file.
type Config struct {
	Role      string     `toml:"role"`
	ID        string     `toml:"id"`
	Broker    Broker     `toml:"broker"`
	TLS       TLS        `toml:"tls"`
	MQTT      MQTT       `toml:"mqtt"`
	Advertise Advertise  `toml:"advertise"`
	HA        HA         `toml:"homeassistant"`
	Buffer    Buffer     `toml:"buffer"`
	Enroll    Enroll     `toml:"enroll"`
	CRL       CRL        `toml:"crl"`
	Sensors   []Sensor   `toml:"sensor"`
	Actuators []Actuator `toml:"actuator"`

	// Path is the file the config was read from ("" when parsed from bytes).
	Path string `toml:"-"`
}

// Broker says where the broker is and which name its certificate carries.
type Broker struct {
	Host      string `toml:"host"`
	Port      int    `toml:"port"`
	Address   string `toml:"address"`
	Discover  bool   `toml:"discover"`
	HostsFile string `toml:"hosts_file"`
	// Discovery (broker.discover = true).
	Service         string   `toml:"service"`
	Instance        string   `toml:"instance"`
	Interfaces      []string `toml:"interfaces"`
	IPVersion       string   `toml:"ip_version"`
	DiscoverTimeout Duration `toml:"discover_timeout"`
}

// HA is Home Assistant MQTT discovery.
type HA struct {
	Discovery bool   `toml:"discovery"`
	Prefix    string `toml:"prefix"`
	Name      string `toml:"name"` // the device's name in Home Assistant; default the id
}

// Advertise is the master's DNS-SD advertisement of the broker beside it;
// off unless interfaces are given.
type Advertise struct {
	Interfaces []string `toml:"interfaces"`
	Instance   string   `toml:"instance"`
	// Refresh is how often the interfaces' addresses are checked, to
	// advertise again after a DHCP change.
	Refresh Duration `toml:"refresh"`
}

// Buffer is the store-and-forward log of telemetry.
type Buffer struct {
	// Dir keeps readings on disk until the broker has acknowledged them;
	// "" keeps them in memory only (lost on restart).
	Dir      string   `toml:"dir"`
	MaxBytes ByteSize `toml:"max_bytes"`
	Sync     string   `toml:"sync"` // "batch" (fsync at most every 100 ms), "always" or "never"
}

// ByteSize is a size written like "64MiB", "512KiB", "1GB" or a number of
// bytes.
type ByteSize int64

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(t []byte) error {
	s := strings.TrimSpace(string(t))
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}, {"", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 || n > (1<<50)/u.mult {
			break
		}
		*b = ByteSize(n * u.mult)
		return nil
	}
	return fmt.Errorf("%q is not a size (write it like \"64MiB\", \"512KiB\" or \"1GB\")", t)
}

// UnmarshalTOML takes a size string or a plain TOML integer of bytes.
func (b *ByteSize) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		return b.UnmarshalText([]byte(v))
	case int64:
		if v < 0 {
			return fmt.Errorf("%d is not a size", v)
		}
		*b = ByteSize(v)
		return nil
	}
	return fmt.Errorf("%v is not a size (write it like \"64MiB\")", v)
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(b), 10)), nil }

// Enroll is certificate enrollment and renewal (EST, RFC 7030).
//
// On a master, Listen and CADir serve enrollment from the CA in CADir. On
// every device, Server is where the client certificate is renewed: by
// default the master beside the broker, https://<broker.host>:8443.
type Enroll struct {
	Listen   string `toml:"listen"`    // master: "ADDR:PORT" to serve EST on; "" serves nothing
	CADir    string `toml:"ca_dir"`    // master: the CA directory made by `agent ca init`
	CertDays int    `toml:"cert_days"` // master: lifetime of the certificates it issues
	// Names are extra DNS names or IPs for the EST server's certificate
	// (the host name, host.local, broker.host and the listen address are
	// always in it).
	Names []string `toml:"names"`
	// Server is the EST server's URL for renewal; Renew false turns
	// renewal off (an externally managed certificate).
	Server string `toml:"server"`
	Renew  *bool  `toml:"renew"`
}

// Renews reports whether the daemon renews its client certificate.
func (e Enroll) Renews() bool { return e.Renew == nil || *e.Renew }

// CRL is the master's upkeep of the broker's certificate revocation list:
// regenerated from enroll.ca_dir well before it expires, written to File
// (Mosquitto's crlfile) and Mosquitto told to reload.
type CRL struct {
	File    string `toml:"file"`     // the broker's crlfile; "" keeps no CRL
	PIDFile string `toml:"pid_file"` // Mosquitto's pid file, signalled with SIGHUP after a change
	// Check is how often the CA's CRL is looked at.
	Check Duration `toml:"check"`
}

// TLS names the credential files.
type TLS struct {
	CA       string `toml:"ca"`
	Cert     string `toml:"cert"`
	Key      string `toml:"key"`
	LegacyCN bool   `toml:"legacy_cn"`
}

// MQTT holds the session settings.
type MQTT struct {
	Prefix    string   `toml:"prefix"`
	KeepAlive Duration `toml:"keepalive"`
}

// Sensor is one [[sensor]] table.
type Sensor struct {
	Name     string   `toml:"name"`
	Type     string   `toml:"type"`
	Interval Duration `toml:"interval"`
	// Options are the table's other keys, checked by the kind (its type).
	Options map[string]any `toml:"-"`
}

// Actuator is one [[actuator]] table.
type Actuator struct {
	Name    string         `toml:"name"`
	Type    string         `toml:"type"`
	Options map[string]any `toml:"-"`
}

// Duration is a time.Duration written as a Go duration string ("200ms").
type Duration struct {
	time.Duration
	set bool // written in the file (so "0s" is refused, not defaulted)
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like \"200ms\", \"30s\" or \"5m\")", b)
	}
	d.Duration, d.set = v, true
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults that fit a board.
const (
	DefaultPort      = 8883
	DefaultHostsFile = "/etc/hosts"
	DefaultCA        = "/etc/agent/tls/ca.crt"
	DefaultCert      = "/etc/agent/tls/device.crt"
	DefaultKey       = "/etc/agent/tls/device.key"
	DefaultPrefix    = "edge"
	DefaultKeepAlive = 30 * time.Second
	DefaultInterval  = time.Second
	MinInterval      = 5 * time.Millisecond
	DefaultService   = "_secure-mqtt._tcp"
	DefaultIPVersion = "both"
	DefaultDiscover  = 3 * time.Second
	DefaultRefresh   = 30 * time.Second
	DefaultCertDays  = 90
	DefaultBufferMax = 64 << 20
	MinBufferMax     = 64 << 10
	DefaultESTPort   = 8443
	DefaultCRLCheck  = time.Minute
	DefaultPIDFile   = "/run/mosquitto/mosquitto.pid"
)

// Load reads and validates the file at path.
func Load(path string) (*Config, error) { return LoadRole(path, "") }

// LoadRole is Load with the role overridden (`agent run --role`) before
// validation, so what a master may set is checked against the role the
// agent will run as.
func LoadRole(path, role string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config %s: file not found: write one (see docs/config.md) or pass --config FILE: %w", path, ErrInvalid)
		}
		return nil, fmt.Errorf("config %s: %w: %w", path, err, ErrInvalid)
	}
	return parse(path, data, role)
}

// Parse decodes and validates data; path is used in messages only.
func Parse(path string, data []byte) (*Config, error) { return parse(path, data, "") }

func parse(path string, data []byte, role string) (*Config, error) {
	if path == "" {
		path = "<config>"
	}
	c := &Config{Path: path}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			key := ""
			if pe.LastKey != "" {
				key = pe.LastKey + ": "
			}
			return nil, fmt.Errorf("config %s: line %d: %s%s: %w", path, pe.Position.Line, key, pe.Message, ErrInvalid)
		}
		return nil, fmt.Errorf("config %s: %v: %w", path, err, ErrInvalid)
	}
	if err := c.collectOptions(data); err != nil {
		return nil, fmt.Errorf("config %s: %v: %w", path, err, ErrInvalid)
	}
	var keys []string
	for _, k := range md.Undecoded() {
		// [[sensor]] and [[actuator]] keys beyond name/type/interval belong
		// to the kind, which checks them when it is built.
		if len(k) > 1 && (k[0] == "sensor" || k[0] == "actuator") {
			continue
		}
		keys = append(keys, k.String())
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		return nil, fmt.Errorf("config %s: unknown key %q (check the spelling; known keys are listed in docs/config.md): %w", path, keys[0], ErrInvalid)
	}
	if role != "" {
		if err := ValidateRole(role); err != nil {
			return nil, fmt.Errorf("--role: %w: %w", err, ErrInvalid)
		}
		c.Role = role
	}
	if !md.IsDefined("broker", "hosts_file") {
		c.Broker.HostsFile = DefaultHostsFile
	}
	if md.IsDefined("mqtt", "prefix") && c.MQTT.Prefix == "" {
		return nil, fmt.Errorf("config %s: mqtt.prefix is empty: give one topic level (default %q): %w", path, DefaultPrefix, ErrInvalid)
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w: %w", path, err, ErrInvalid)
	}
	return c, nil
}

// collectOptions gathers each [[sensor]] and [[actuator]] table's keys other
// than the common ones into its Options.
func (c *Config) collectOptions(data []byte) error {
	var raw struct {
		Sensor   []map[string]any `toml:"sensor"`
		Actuator []map[string]any `toml:"actuator"`
	}
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return err
	}
	strip := func(m map[string]any, common ...string) map[string]any {
		for _, k := range common {
			delete(m, k)
		}
		if len(m) == 0 {
			return nil
		}
		return m
	}
	for i := range c.Sensors {
		if i < len(raw.Sensor) {
			c.Sensors[i].Options = strip(raw.Sensor[i], "name", "type", "interval")
		}
	}
	for i := range c.Actuators {
		if i < len(raw.Actuator) {
			c.Actuators[i].Options = strip(raw.Actuator[i], "name", "type")
		}
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.Role == "" {
		c.Role = RoleRemote
	}
	if c.Broker.Port == 0 {
		c.Broker.Port = DefaultPort
	}
	if c.Broker.Service == "" {
		c.Broker.Service = DefaultService
	}
	if c.Broker.IPVersion == "" {
		c.Broker.IPVersion = DefaultIPVersion
	}
	if c.HA.Prefix == "" {
		c.HA.Prefix = "homeassistant"
	}
	if !c.Advertise.Refresh.set {
		c.Advertise.Refresh.Duration = DefaultRefresh
	}
	if !c.Broker.DiscoverTimeout.set {
		c.Broker.DiscoverTimeout.Duration = DefaultDiscover
	}
	if c.Buffer.MaxBytes == 0 {
		c.Buffer.MaxBytes = DefaultBufferMax
	}
	if c.Buffer.Sync == "" {
		c.Buffer.Sync = "batch"
	}
	if c.Enroll.CertDays == 0 {
		c.Enroll.CertDays = DefaultCertDays
	}
	if c.Enroll.Server == "" {
		c.Enroll.Server = "https://" + net.JoinHostPort(c.Broker.Host, strconv.Itoa(DefaultESTPort))
	}
	if !c.CRL.Check.set {
		c.CRL.Check.Duration = DefaultCRLCheck
	}
	if c.CRL.File != "" && c.CRL.PIDFile == "" {
		c.CRL.PIDFile = DefaultPIDFile
	}
	if c.TLS.CA == "" {
		c.TLS.CA = DefaultCA
	}
	if c.TLS.Cert == "" {
		c.TLS.Cert = DefaultCert
	}
	if c.TLS.Key == "" {
		c.TLS.Key = DefaultKey
	}
	if c.MQTT.Prefix == "" {
		c.MQTT.Prefix = DefaultPrefix
	}
	if !c.MQTT.KeepAlive.set {
		c.MQTT.KeepAlive.Duration = DefaultKeepAlive
	}
	for i := range c.Sensors {
		if !c.Sensors[i].Interval.set {
			c.Sensors[i].Interval.Duration = DefaultInterval
		}
	}
}

var (
	serviceRE = regexp.MustCompile(`^_[A-Za-z0-9-]{1,15}\._(tcp|udp)$`)
	// A topic level we build from config: no wildcards, separators or spaces.
	levelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
	labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

// ValidID reports whether s can be a device id (it becomes a topic level and
// the certificate CN).
func ValidID(s string) bool { return levelRE.MatchString(s) }

// ValidHost reports whether s is an RFC 1123 host name.
func ValidHost(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// ValidateRole checks a role from the file or the --role flag.
func ValidateRole(r string) error {
	if r != RoleRemote && r != RoleMaster {
		return fmt.Errorf("role %q is not a role: use %q or %q", r, RoleRemote, RoleMaster)
	}
	return nil
}

func (c *Config) validate() error {
	if err := ValidateRole(c.Role); err != nil {
		return err
	}
	if c.ID != "" && !ValidID(c.ID) {
		return fmt.Errorf("id %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (it is a topic level and the certificate CN)", c.ID)
	}
	b := c.Broker
	if b.Host == "" {
		return errors.New("broker.host is required: the name the broker's certificate is issued for, e.g. host = \"broker.local\"")
	}
	if net.ParseIP(b.Host) != nil {
		return fmt.Errorf("broker.host %q is an IP address: it must be the name the broker's certificate is issued for; put the IP in broker.address", b.Host)
	}
	if err := hostsfile.ValidName(b.Host); err != nil {
		// The same check the hosts-file pin makes, so a name accepted here
		// can always be pinned.
		return fmt.Errorf("broker.host %q is not an RFC 1123 host name (letters, digits, hyphens, dot-separated; no trailing dot, IP address, port or scheme): %s", b.Host, strings.TrimPrefix(err.Error(), hostsfile.ErrInvalid.Error()+": "))
	}
	if b.Port < 1 || b.Port > 65535 {
		return fmt.Errorf("broker.port %d: must be 1-65535 (Mosquitto's TLS port is usually 8883)", b.Port)
	}
	if b.Address != "" && net.ParseIP(b.Address) == nil && !ValidHost(b.Address) {
		return fmt.Errorf("broker.address %q: must be an IP address or host name, without a port (the port is broker.port)", b.Address)
	}
	if b.Discover && b.Address != "" {
		return fmt.Errorf("broker.discover = true and broker.address = %q: choose one (a fixed address, or discovery)", b.Address)
	}
	if !serviceRE.MatchString(b.Service) {
		return fmt.Errorf("broker.service %q: a DNS-SD service type like \"_secure-mqtt._tcp\"", b.Service)
	}
	switch b.IPVersion {
	case "4", "6", "both":
	default:
		return fmt.Errorf("broker.ip_version %q: use \"4\", \"6\" or \"both\"", b.IPVersion)
	}
	if d := b.DiscoverTimeout.Duration; d < 100*time.Millisecond || d > time.Minute {
		return fmt.Errorf("broker.discover_timeout %v: between 100ms and 1m", d)
	}
	if r := c.Advertise.Refresh.Duration; r < time.Second || r > time.Hour {
		return fmt.Errorf("advertise.refresh %v: between 1s and 1h", r)
	}
	for _, key := range []struct {
		name  string
		names []string
	}{{"broker.interfaces", b.Interfaces}, {"advertise.interfaces", c.Advertise.Interfaces}} {
		for _, n := range key.names {
			if n == "" || len(n) > 15 || strings.ContainsAny(n, "/ \t\n") {
				return fmt.Errorf("%s: %q is not an interface name (like \"eth0\" or \"wlan0\")", key.name, n)
			}
		}
	}
	if !levelRE.MatchString(c.HA.Prefix) {
		return fmt.Errorf("homeassistant.prefix %q: one topic level (Home Assistant's default is \"homeassistant\")", c.HA.Prefix)
	}
	if !levelRE.MatchString(c.MQTT.Prefix) {
		return fmt.Errorf("mqtt.prefix %q: one topic level of letters, digits, '.', '_' or '-' (no '/', '+', '#')", c.MQTT.Prefix)
	}
	if ka := c.MQTT.KeepAlive.Duration; ka < 5*time.Second || ka > 65535*time.Second || ka%time.Second != 0 {
		return fmt.Errorf("mqtt.keepalive %v: whole seconds between 5s and 65535s", ka)
	}
	switch c.Buffer.Sync {
	case "batch", "always", "never":
	default:
		return fmt.Errorf("buffer.sync %q: use \"batch\" (fsync at most every 100 ms), \"always\" or \"never\"", c.Buffer.Sync)
	}
	if c.Buffer.MaxBytes < MinBufferMax {
		return fmt.Errorf("buffer.max_bytes %d: at least %d (64KiB)", c.Buffer.MaxBytes, MinBufferMax)
	}
	if err := c.validateEnroll(); err != nil {
		return err
	}
	seen := map[string]string{}
	for i, s := range c.Sensors {
		key := fmt.Sprintf("sensor[%d]", i)
		if err := checkPart(key, s.Name, s.Type, seen); err != nil {
			return err
		}
		if s.Interval.Duration < MinInterval {
			return fmt.Errorf("%s (%s).interval %v: must be at least %v", key, s.Name, s.Interval.Duration, MinInterval)
		}
	}
	seen = map[string]string{} // a sensor and an actuator may share a name: their topics differ
	for i, a := range c.Actuators {
		if err := checkPart(fmt.Sprintf("actuator[%d]", i), a.Name, a.Type, seen); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateEnroll() error {
	e := c.Enroll
	if e.Listen != "" {
		host, port, err := net.SplitHostPort(e.Listen)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 || (host != "" && net.ParseIP(host) == nil) {
			return fmt.Errorf("enroll.listen %q: an IP address and port like \"0.0.0.0:%d\" or \":%d\"", e.Listen, DefaultESTPort, DefaultESTPort)
		}
		if c.Role != RoleMaster {
			return fmt.Errorf("enroll.listen %q is set but role is %q: only a master serves enrollment (set role = \"master\" or run with --role master)", e.Listen, c.Role)
		}
		if e.CADir == "" {
			return fmt.Errorf("enroll.listen %q needs enroll.ca_dir: the CA directory made by `agent ca init --dir DIR`", e.Listen)
		}
	}
	if c.CRL.File != "" && e.CADir == "" {
		return fmt.Errorf("crl.file %q needs enroll.ca_dir: the CA directory whose CRL is kept fresh", c.CRL.File)
	}
	if c.CRL.File != "" && c.Role != RoleMaster {
		return fmt.Errorf("crl.file %q is set but role is %q: the master keeps the broker's CRL", c.CRL.File, c.Role)
	}
	if d := c.CRL.Check.Duration; d < time.Second || d > 24*time.Hour {
		return fmt.Errorf("crl.check %v: between 1s and 24h", d)
	}
	if e.CertDays < 1 || e.CertDays > 3650 {
		return fmt.Errorf("enroll.cert_days %d: between 1 and 3650 (default %d)", e.CertDays, DefaultCertDays)
	}
	u, err := url.Parse(e.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("enroll.server %q: an https URL like \"https://master.local:%d\" (EST runs over TLS only)", e.Server, DefaultESTPort)
	}
	for _, n := range e.Names {
		if net.ParseIP(n) == nil && !ValidHost(n) {
			return fmt.Errorf("enroll.names: %q is not a DNS name or IP address", n)
		}
	}
	return nil
}

// checkPart validates the name and type of one [[sensor]] or [[actuator]];
// seen maps names already used to their keys.
func checkPart(key, name, typ string, seen map[string]string) error {
	if !levelRE.MatchString(name) {
		return fmt.Errorf("%s.name %q: required; letters, digits, '.', '_' or '-' (it is a topic level)", key, name)
	}
	if prev, dup := seen[name]; dup {
		return fmt.Errorf("%s.name %q: already used by %s", key, name, prev)
	}
	seen[name] = key
	if typ == "" {
		return fmt.Errorf("%s (%s).type is required", key, name)
	}
	return nil
}
