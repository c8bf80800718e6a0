package brokerconf

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", path, got)
	}
}

// TestRenderGolden pins the generated text: Debian's layout with the
// defaults, and a standalone one with every option changed and the plain
// loopback listener.
func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"debian", Options{CADir: "/var/lib/agent/ca", Host: "hub.lan", SANs: []string{"hub.local,192.168.1.10"}}},
		{"standalone", Options{CADir: "/var/lib/agent/ca", Host: "broker.example.org", SANs: []string{"10.0.0.2", "fd00::2"},
			Out: "/srv/mqtt", CertDir: "/srv/mqtt", Port: 18883, Bind: "10.0.0.2", Prefix: "farm", HAPrefix: "ha",
			Master: "hub-1", LocalPlain: true, LocalPort: 11883, BrokerUser: "mqtt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Render(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".conf.golden", f.Conf)
			golden(t, tc.name+".acl.golden", f.ACL)
			if tc.o.LocalPlain {
				golden(t, tc.name+".local.acl.golden", f.LocalACL)
			} else if f.LocalACL != nil {
				t.Errorf("LocalACL without LocalPlain:\n%s", f.LocalACL)
			}
		})
	}
}

// TestRenderInvariants: whatever the options, the files say they are
// generated, never repeat what Debian's mosquitto.conf sets, always set
// the settings the wire contract depends on, and open no plain listener
// unless asked (and then only on loopback).
func TestRenderInvariants(t *testing.T) {
	for _, plain := range []bool{false, true} {
		f, err := Render(Options{CADir: "/ca", Host: "h.lan", LocalPlain: plain})
		if err != nil {
			t.Fatal(err)
		}
		conf := string(f.Conf)
		for _, want := range []string{"set_tcp_nodelay true\n", "require_certificate true\n", "use_identity_as_username true\n",
			"tls_version tlsv1.2\n", "crlfile /etc/mosquitto/certs/ca.crl\n", "allow_anonymous false\n", "listener 8883\n",
			"acl_file /etc/mosquitto/conf.d/agent.acl\n"} {
			if !strings.Contains(conf, want) {
				t.Errorf("plain=%v: no %q in agent.conf", plain, want)
			}
		}
		var settings []string
		for line := range strings.SplitSeq(conf, "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				settings = append(settings, strings.Fields(line)[0])
			}
		}
		for _, never := range []string{"pid_file", "persistence", "persistence_location", "log_dest", "include_dir", "user", "password_file"} {
			if slices.Contains(settings, never) {
				t.Errorf("plain=%v: agent.conf sets %q, which Debian's mosquitto.conf owns", plain, never)
			}
		}
		if got := strings.Count(conf, "\nlistener "); got != map[bool]int{false: 1, true: 2}[plain] {
			t.Errorf("plain=%v: %d listeners", plain, got)
		}
		if plain != strings.Contains(conf, "listener 1883 127.0.0.1\n") {
			t.Errorf("plain=%v: plain listener line wrong:\n%s", plain, conf)
		}
		if plain != strings.Contains(conf, "per_listener_settings true\n") {
			t.Errorf("plain=%v: per_listener_settings wrong:\n%s", plain, conf)
		}
		for name, data := range map[string][]byte{"conf": f.Conf, "acl": f.ACL, "local": f.LocalACL} {
			if data != nil && !bytes.HasPrefix(data, []byte(generatedTag)) {
				t.Errorf("%s does not start with %q", name, generatedTag)
			}
		}
	}
}

var refusals = []struct {
	name, flag string
	o          Options
}{
	{"no ca dir", "--ca-dir", Options{Host: "h.lan"}},
	{"no host", "--host", Options{CADir: "/ca"}},
	{"host newline", "--host", Options{CADir: "/ca", Host: "h.lan\nallow_anonymous true"}},
	{"host ip", "--host", Options{CADir: "/ca", Host: "10.0.0.1"}},
	{"host wildcard", "--host", Options{CADir: "/ca", Host: "*.lan"}},
	{"host underscore", "--host", Options{CADir: "/ca", Host: "my_broker"}},
	{"san", "--san", Options{CADir: "/ca", Host: "h.lan", SANs: []string{"ok.lan,bad name"}}},
	{"san zone", "--san", Options{CADir: "/ca", Host: "h.lan", SANs: []string{"fe80::1%eth0"}}},
	{"prefix slash", "--prefix", Options{CADir: "/ca", Host: "h.lan", Prefix: "edge/x"}},
	{"prefix wildcard", "--prefix", Options{CADir: "/ca", Host: "h.lan", Prefix: "#"}},
	{"prefix newline", "--prefix", Options{CADir: "/ca", Host: "h.lan", Prefix: "edge\nuser evil"}},
	{"ha prefix plus", "--ha-prefix", Options{CADir: "/ca", Host: "h.lan", HAPrefix: "ha+"}},
	{"master newline", "--master", Options{CADir: "/ca", Host: "h.lan", Master: "hub\ntopic readwrite #"}},
	{"master space", "--master", Options{CADir: "/ca", Host: "h.lan", Master: "hub 1"}},
	{"master percent", "--master", Options{CADir: "/ca", Host: "h.lan", Master: "%u"}},
	{"out newline", "--out", Options{CADir: "/ca", Host: "h.lan", Out: "/tmp/x\nlistener 1883"}},
	{"out space", "--out", Options{CADir: "/ca", Host: "h.lan", Out: "/tmp/my dir"}},
	{"out relative", "--out", Options{CADir: "/ca", Host: "h.lan", Out: "conf"}},
	{"certs cr", "--cert-dir", Options{CADir: "/ca", Host: "h.lan", CertDir: "/etc/x\r"}},
	{"ca dir tab", "--ca-dir", Options{CADir: "/ca\tx", Host: "h.lan"}},
	{"port", "--port", Options{CADir: "/ca", Host: "h.lan", Port: 70000}},
	{"local port", "--local-port", Options{CADir: "/ca", Host: "h.lan", LocalPort: -1}},
	{"local port clash", "--local-port", Options{CADir: "/ca", Host: "h.lan", LocalPlain: true, LocalPort: 8883}},
	{"bind name", "--bind", Options{CADir: "/ca", Host: "h.lan", Bind: "localhost"}},
	{"bind newline", "--bind", Options{CADir: "/ca", Host: "h.lan", Bind: "127.0.0.1\nlistener 1883"}},
	{"days", "--days", Options{CADir: "/ca", Host: "h.lan", Days: -1}},
	{"key", "--key", Options{CADir: "/ca", Host: "h.lan", Key: "rsa1024"}},
	{"broker user", "--broker-user", Options{CADir: "/ca", Host: "h.lan", BrokerUser: "root\n"}},
}

// TestRefusals: every bad value is refused with ErrInvalid, naming its
// flag, before anything is read or written.
func TestRefusals(t *testing.T) {
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(tc.o)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.flag) {
				t.Errorf("err = %q does not name %s", err, tc.flag)
			}
			if tc.name == "out relative" {
				return // Write makes paths absolute first
			}
			// Write refuses before touching the CA directory or --out.
			dir := t.TempDir()
			o := tc.o
			if o.Out == "" {
				o.Out = filepath.Join(dir, "out")
			}
			if o.CertDir == "" {
				o.CertDir = filepath.Join(dir, "out")
			}
			if _, err := Write(o); !errors.Is(err, ErrInvalid) {
				t.Errorf("Write: err = %v, want ErrInvalid", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
				t.Errorf("Write created %s after refusing", filepath.Join(dir, "out"))
			}
		})
	}
}

// FuzzRender: no free-text value makes Render add a line of its own: the
// configuration always has exactly the expected directives, whatever
// passes validation.
func FuzzRender(f *testing.F) {
	f.Add("h.lan", "ok.lan,10.0.0.1", "edge", "homeassistant", "master", "/etc/mosquitto/conf.d", "127.0.0.1")
	for _, tc := range refusals {
		f.Add(tc.o.Host, strings.Join(tc.o.SANs, ","), tc.o.Prefix, tc.o.HAPrefix, tc.o.Master, tc.o.Out, tc.o.Bind)
	}
	f.Fuzz(func(t *testing.T, host, sans, prefix, ha, master, out, bind string) {
		fs, err := Render(Options{CADir: "/ca", Host: host, SANs: []string{sans}, Prefix: prefix, HAPrefix: ha,
			Master: master, Out: out, Bind: bind})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal without ErrInvalid: %v", err)
			}
			return
		}
		directives := func(data []byte) []string {
			var d []string
			for line := range strings.SplitSeq(string(data), "\n") {
				if line != "" && !strings.HasPrefix(line, "#") {
					d = append(d, strings.Fields(line)[0])
				}
			}
			return d
		}
		want := "per_listener_settings allow_anonymous acl_file set_tcp_nodelay max_queued_messages listener cafile certfile keyfile crlfile require_certificate use_identity_as_username tls_version"
		if got := strings.Join(directives(fs.Conf), " "); got != want {
			t.Fatalf("agent.conf directives %q, want %q:\n%s", got, want, fs.Conf)
		}
		if got := strings.Join(directives(fs.ACL), " "); got != "pattern pattern pattern user topic" {
			t.Fatalf("agent.acl directives %q:\n%s", got, fs.ACL)
		}
		for line := range strings.SplitSeq(string(fs.Conf)+string(fs.ACL), "\n") {
			if n := len(strings.Fields(line)); !strings.HasPrefix(line, "#") && n > 3 {
				t.Fatalf("line %q has %d fields", line, n)
			}
		}
	})
}
