package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const full = `
role = "remote"
id = "dev1"
[broker]
host = "broker.test"
port = 8883
address = "127.0.0.1"
discover = false
hosts_file = "/etc/hosts"
[tls]
ca = "/etc/agent/tls/ca.crt"
cert = "/etc/agent/tls/device.crt"
key = "/etc/agent/tls/device.key"
legacy_cn = false
[mqtt]
prefix = "edge"
keepalive = "30s"
[[sensor]]
name = "sim1"
type = "sim"
interval = "200ms"
[[actuator]]
name = "relay1"
type = "sim"
`

func TestParseFull(t *testing.T) {
	c, err := Parse("agent.toml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "dev1" || c.Broker.Host != "broker.test" || c.Broker.Address != "127.0.0.1" || c.MQTT.KeepAlive.Duration != 30*time.Second {
		t.Errorf("parsed %+v", c)
	}
	if len(c.Sensors) != 1 || c.Sensors[0].Interval.Duration != 200*time.Millisecond || len(c.Actuators) != 1 {
		t.Errorf("parts %+v %+v", c.Sensors, c.Actuators)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("agent.toml", []byte("[broker]\nhost = \"broker.local\"\n[[sensor]]\nname=\"s\"\ntype=\"sim\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Role: RoleRemote, Broker: Broker{Host: "broker.local", Port: 8883, HostsFile: "/etc/hosts",
		Service: DefaultService, IPVersion: "both", DiscoverTimeout: Duration{Duration: DefaultDiscover}},
		TLS: TLS{CA: DefaultCA, Cert: DefaultCert, Key: DefaultKey}, MQTT: MQTT{Prefix: "edge", KeepAlive: Duration{Duration: 30 * time.Second}}}
	if c.Role != want.Role || !reflect.DeepEqual(c.Broker, want.Broker) || c.TLS != want.TLS || c.MQTT.Prefix != want.MQTT.Prefix || c.MQTT.KeepAlive.Duration != want.MQTT.KeepAlive.Duration {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	if c.Sensors[0].Interval.Duration != time.Second {
		t.Errorf("default interval %v", c.Sensors[0].Interval)
	}
	// hosts_file = "" is kept: it means never touch a hosts file.
	c, err = Parse("agent.toml", []byte("[broker]\nhost = \"b\"\nhosts_file = \"\"\n"))
	if err != nil || c.Broker.HostsFile != "" {
		t.Errorf("hosts_file = %q, %v; want empty", c.Broker.HostsFile, err)
	}
}

var badCases = []struct {
	name, toml, want string
}{
	{"unknown top key", "rol = \"remote\"\n[broker]\nhost=\"b\"", `unknown key "rol"`},
	{"unknown nested key", "[broker]\nhost=\"b\"\nprot=1", `unknown key "broker.prot"`},
	{"syntax", "[broker\nhost=\"b\"", "line 2: expected"},
	{"wrong type", "[broker]\nhost=\"b\"\nport=\"8883\"", "broker.port"},
	{"no host", "role=\"remote\"", "broker.host is required"},
	{"host with port", "[broker]\nhost=\"b.test:8883\"", `broker.host "b.test:8883" is not an RFC 1123 host name`},
	{"bad role", "role=\"boss\"\n[broker]\nhost=\"b\"", `role "boss" is not a role`},
	{"bad id", "id=\"dev/1\"\n[broker]\nhost=\"b\"", `id "dev/1"`},
	{"port range", "[broker]\nhost=\"b\"\nport=70000", "broker.port 70000"},
	{"address with port", "[broker]\nhost=\"b\"\naddress=\"10.0.0.1:8883\"", `broker.address "10.0.0.1:8883"`},
	{"discover and address", "[broker]\nhost=\"b\"\ndiscover=true\naddress=\"192.0.2.1\"", "choose one"},
	{"bad service", "[broker]\nhost=\"b\"\nservice=\"mqtt\"", `broker.service "mqtt"`},
	{"bad ip_version", "[broker]\nhost=\"b\"\nip_version=\"5\"", `broker.ip_version "5"`},
	{"bad interface", "[broker]\nhost=\"b\"\ninterfaces=[\"eth 0\"]", `broker.interfaces: "eth 0"`},
	{"bad advertise interface", "[broker]\nhost=\"b\"\n[advertise]\ninterfaces=[\"\"]", `advertise.interfaces: ""`},
	{"advertise refresh", "[broker]\nhost=\"b\"\n[advertise]\nrefresh=\"10ms\"", "advertise.refresh 10ms"},
	{"discover timeout", "[broker]\nhost=\"b\"\ndiscover_timeout=\"1ms\"", "broker.discover_timeout 1ms"},
	{"prefix wildcard", "[broker]\nhost=\"b\"\n[mqtt]\nprefix=\"edge/#\"", `mqtt.prefix "edge/#"`},
	{"bad duration", "[broker]\nhost=\"b\"\n[mqtt]\nkeepalive=\"soon\"", `mqtt.keepalive: "soon" is not a duration`},
	{"keepalive too short", "[broker]\nhost=\"b\"\n[mqtt]\nkeepalive=\"1s\"", "mqtt.keepalive 1s"},
	{"sensor no name", "[broker]\nhost=\"b\"\n[[sensor]]\ntype=\"sim\"", "sensor[0].name"},
	{"sensor dup", "[broker]\nhost=\"b\"\n[[sensor]]\nname=\"a\"\ntype=\"sim\"\n[[sensor]]\nname=\"a\"\ntype=\"sim\"", `sensor[1].name "a": already used by sensor[0]`},
	{"sensor no type", "[broker]\nhost=\"b\"\n[[sensor]]\nname=\"a\"", "sensor[0] (a).type is required"},
	{"interval too short", "[broker]\nhost=\"b\"\n[[sensor]]\nname=\"a\"\ntype=\"sim\"\ninterval=\"1ms\"", "sensor[0] (a).interval 1ms"},
	{"host is an IP", "[broker]\nhost=\"10.0.0.1\"", `broker.host "10.0.0.1" is an IP address`},
	{"empty prefix", "[broker]\nhost=\"b\"\n[mqtt]\nprefix=\"\"", "mqtt.prefix is empty"},
	{"zero keepalive", "[broker]\nhost=\"b\"\n[mqtt]\nkeepalive=\"0s\"", "mqtt.keepalive 0s"},
	{"zero interval", "[broker]\nhost=\"b\"\n[[sensor]]\nname=\"a\"\ntype=\"sim\"\ninterval=\"0s\"", "sensor[0] (a).interval 0s"},
	{"actuator no type", "[broker]\nhost=\"b\"\n[[actuator]]\nname=\"r\"", "actuator[0] (r).type is required"},
	{"enroll listen on remote", "[broker]\nhost=\"b\"\n[enroll]\nlisten=\":8443\"\nca_dir=\"/ca\"", `enroll.listen ":8443" is set but role is "remote"`},
	{"enroll listen no ca_dir", "role=\"master\"\n[broker]\nhost=\"b\"\n[enroll]\nlisten=\":8443\"", "needs enroll.ca_dir"},
	{"enroll listen bad", "role=\"master\"\n[broker]\nhost=\"b\"\n[enroll]\nlisten=\"master:8443\"\nca_dir=\"/ca\"", `enroll.listen "master:8443"`},
	{"enroll server http", "[broker]\nhost=\"b\"\n[enroll]\nserver=\"http://m:8443\"", `enroll.server "http://m:8443": an https URL`},
	{"enroll cert_days", "[broker]\nhost=\"b\"\n[enroll]\ncert_days=-1", "enroll.cert_days -1"},
	{"enroll names", "[broker]\nhost=\"b\"\n[enroll]\nnames=[\"a b\"]", `enroll.names: "a b"`},
	{"crl without ca_dir", "role=\"master\"\n[broker]\nhost=\"b\"\n[crl]\nfile=\"/etc/mosquitto/ca.crl\"", "crl.file \"/etc/mosquitto/ca.crl\" needs enroll.ca_dir"},
	{"buffer sync", "[broker]\nhost=\"b\"\n[buffer]\nsync=\"sometimes\"", `buffer.sync "sometimes"`},
	{"buffer size", "[broker]\nhost=\"b\"\n[buffer]\nmax_bytes=\"lots\"", `buffer.max_bytes: "lots" is not a size`},
	{"buffer too small", "[broker]\nhost=\"b\"\n[buffer]\nmax_bytes=\"1KiB\"", "buffer.max_bytes 1024"},
	{"crl check", "[broker]\nhost=\"b\"\n[crl]\ncheck=\"1ms\"", "crl.check 1ms"},
}

func TestBufferSizes(t *testing.T) {
	for in, want := range map[string]int64{"64MiB": 64 << 20, "512KiB": 512 << 10, "1GB": 1e9, "65536": 65536, "100000B": 100000, "2 GiB": 2 << 30} {
		c, err := Parse("a.toml", []byte("[broker]\nhost=\"b\"\n[buffer]\nmax_bytes=\""+in+"\"\n"))
		if err != nil || int64(c.Buffer.MaxBytes) != want {
			t.Errorf("max_bytes %q = %d, %v; want %d", in, c.Buffer.MaxBytes, err, want)
		}
	}
	if c, err := Parse("a.toml", []byte("[broker]\nhost=\"b\"\n[buffer]\nmax_bytes=131072\n")); err != nil || c.Buffer.MaxBytes != 131072 {
		t.Errorf("max_bytes as an integer: %v", err)
	}
	c, _ := Parse("a.toml", []byte("[broker]\nhost=\"b\"\n"))
	if c.Buffer.MaxBytes != DefaultBufferMax || c.Buffer.Sync != "batch" || c.Buffer.Dir != "" {
		t.Errorf("buffer defaults %+v", c.Buffer)
	}
}

func TestEnrollDefaults(t *testing.T) {
	c, err := Parse("agent.toml", []byte("role=\"master\"\n[broker]\nhost = \"broker.local\"\n[enroll]\nlisten=\":8443\"\nca_dir=\"/var/lib/agent/ca\"\n[crl]\nfile=\"/etc/mosquitto/ca.crl\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Enroll.Server != "https://broker.local:8443" || c.Enroll.CertDays != 90 || !c.Enroll.Renews() {
		t.Errorf("enroll defaults %+v", c.Enroll)
	}
	if c.CRL.PIDFile != DefaultPIDFile || c.CRL.Check.Duration != time.Minute {
		t.Errorf("crl defaults %+v", c.CRL)
	}
	c, err = Parse("agent.toml", []byte("[broker]\nhost = \"b\"\n[enroll]\nrenew=false\n"))
	if err != nil || c.Enroll.Renews() {
		t.Errorf("renew=false: %v, Renews %v", err, c.Enroll.Renews())
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("/etc/agent/agent.toml", []byte(tc.toml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "/etc/agent/agent.toml") {
				t.Errorf("error %q lacks %q or the file name", err, tc.want)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	c, err := Parse("a.toml", []byte("[broker]\nhost=\"b\"\n[[sensor]]\nname=\"t\"\ntype=\"bme280\"\nbus=\"1\"\naddress=0x76\n[[sensor]]\nname=\"s\"\ntype=\"sim\"\n[[actuator]]\nname=\"r\"\ntype=\"gpio-out\"\npin=\"GPIO17\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sensors[0].Options; got["bus"] != "1" || got["address"] != int64(0x76) || len(got) != 2 {
		t.Errorf("sensor options = %v", got)
	}
	if c.Sensors[1].Options != nil {
		t.Errorf("sim options = %v, want none", c.Sensors[1].Options)
	}
	if c.Actuators[0].Options["pin"] != "GPIO17" {
		t.Errorf("actuator options = %v", c.Actuators[0].Options)
	}
}

func TestLoadMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.toml")
	_, err := Load(p)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), p) {
		t.Errorf("Load(missing) = %v", err)
	}
	if err := os.WriteFile(p, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(p); err != nil || c.Path != p {
		t.Errorf("Load = %+v, %v", c, err)
	}
}

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{"broker.test": true, "b": true, "a-b.c1": true, "broker.local.": true,
		"-a.b": false, "a..b": false, "a_b.c": false, "": false, "1.2.3.4:1": false, strings.Repeat("a", 64) + ".b": false} {
		if got := ValidHost(h); got != want {
			t.Errorf("ValidHost(%q) = %v, want %v", h, got, want)
		}
	}
}

// FuzzParse: any bytes give a config or an ErrInvalid error, never a panic,
// and an accepted config passes its own validation again.
func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	for _, tc := range badCases {
		f.Add([]byte(tc.toml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
	})
}
